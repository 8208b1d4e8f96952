"""The `supervisor` command: argument parsing and printing, the control client, log reading.

Short-lived: it imports the wire and the config, and the daemon only for `supervisor run`
(`daemon/main.py`). The console script and `python -m supervisor` call `cli.main.main`.
"""
