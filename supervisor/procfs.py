"""Reading /proc/PID/stat: a process's fields and its start time. Stdlib only, a shared leaf.

The daemon names processes by (pid, start time) so a reused pid is never taken for ours; the
monitor samples from the same fields. The guardian keeps a copy of its own, as it runs as a
bare script (`python -I -S guardian.py`) that cannot import the package.
"""

from __future__ import annotations


def stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat from field 3 on (index 0 is the state), or None if pid is gone.

    The command name (field 2) may hold spaces and parentheses; it ends at the last ")".
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot (field 22), or None if it is gone.

    With the pid it names one process for good: a reused pid has another start time.
    """
    fields = stat_fields(pid)
    return int(fields[19]) if fields else None
