"""Plugins: tasks inside the supervisor's loop, each with a typed config table.

A plugin is a `Plugin` subclass (base.py). Built-in ones are found by name;
third-party ones through the entry-point group `supervisor.plugins`, or
named directly in their table with `class = "package.module:Class"`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from supervisor.plugins.base import Plugin

BUILT_IN = {
    "monitor": "supervisor.plugins.monitor.plugin:Monitor",
    "cache_warmer": "supervisor.plugins.cache_warmer.plugin:CacheWarmer",
    "db_tuning": "supervisor.plugins.db_tuning.plugin:DbTuning",
}
GROUP = "supervisor.plugins"


def known() -> list[str]:
    """Names a `[plugins.NAME]` table may use without `class`."""
    return sorted({*BUILT_IN, *(ep.name for ep in entry_points(group=GROUP))})


def load(name: str, spec: str = "") -> type[Plugin]:
    """The plugin class for a table: `class = ...`, else built-in, else an entry point.

    Raises LookupError with a message for the operator.
    """
    if spec:
        return _import(spec)
    if name in BUILT_IN:
        return _import(BUILT_IN[name])
    for ep in entry_points(group=GROUP, name=name):
        cls = ep.load()
        if isinstance(cls, type) and issubclass(cls, Plugin):
            return cls
        raise LookupError(f"entry point {ep.value} is not a Plugin subclass")
    raise LookupError(f"unknown plugin; known: {', '.join(known()) or 'none'}")


def _import(spec: str) -> type[Plugin]:
    module_name, _, attr = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise LookupError(f'cannot load "{spec}": {e}') from None
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise LookupError(f'"{spec}" is not a Plugin subclass')
    return cls
