"""supervisor: a process supervisor for fleets of bot workers.

Kept import-light on purpose: `python -m supervisor.sdk.entry` and every CLI
call import this first.
"""

__version__ = "0.1.0"
