"""Plugins: the public plugin API (`base`), the loader, and one folder per built-in plugin.

A plugin is a `Plugin` subclass (base.py). Built-in ones are found by name (loader.py);
third-party ones through the entry-point group `supervisor.plugins`, or named directly in
their table with `class = "package.module:Class"`. A plugin imports its API, the wire and
the config readers, never the daemon.
"""
