"""The guardian: ends the fleet if the supervisor dies without doing so.

A `kill -9` of the supervisor gives it no chance to stop its workers, and a
parent-death signal would reach only the direct children, not the
grandchildren in their process groups. So the supervisor starts this small
process (stdlib only, run as `python -I -S guardian.py`, in a session of
its own) and keeps it told, over a pipe, which process groups it owns:

    add PGID START_TICKS SIGNAL TIMEOUT_S     a worker group was started
    del PGID                                  it is gone
    bye                                       clean shutdown; nothing to do

When the pipe ends without `bye`, the supervisor is gone: the guardian sends
each group its stop signal, waits up to its stop timeout, SIGKILLs what is
left, and exits. `end_groups` is also what a restarted supervisor runs on the
leftovers named in its state file, as a last resort.

A group is signalled only if it is provably still ours: its leader is alive
with the recorded start time, or the leader is gone while members remain
(Linux never reuses a pid as long as a process group of that id exists).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable
from typing import NamedTuple

_POLL_S = 0.05


class Group(NamedTuple):
    pgid: int
    start_ticks: int
    signal: int
    timeout_s: float


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


def still_ours(group: Group) -> bool:
    ticks = start_ticks(group.pgid)
    return ticks == group.start_ticks or (ticks is None and _exists(group.pgid))


def _exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def end_groups(groups: Iterable[Group]) -> int:
    """Stop signal to each group still ours, SIGKILL at its deadline; returns how many."""
    deadlines: dict[int, float] = {}
    for g in groups:
        if still_ours(g):
            try:
                os.killpg(g.pgid, g.signal)
            except OSError:
                continue
            deadlines[g.pgid] = time.monotonic() + g.timeout_s
    ended = len(deadlines)
    while deadlines:
        now = time.monotonic()
        for pgid, deadline in list(deadlines.items()):
            if not _exists(pgid):
                del deadlines[pgid]
            elif now >= deadline:
                with contextlib.suppress(OSError):
                    os.killpg(pgid, signal.SIGKILL)
                del deadlines[pgid]
        if deadlines:
            time.sleep(_POLL_S)
    return ended


def parse(line: bytes, groups: dict[int, Group]) -> bool:
    """Apply one command line; False on `bye`."""
    parts = line.split()
    if not parts:
        return True
    if parts[0] == b"bye":
        return False
    if parts[0] == b"add" and len(parts) == 5:
        g = Group(int(parts[1]), int(parts[2]), int(parts[3]), float(parts[4]))
        groups[g.pgid] = g
    elif parts[0] == b"del" and len(parts) == 2:
        groups.pop(int(parts[1]), None)
    return True


def main() -> int:
    os.chdir("/")  # never pin the directory the supervisor was started in
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_IGN)
    groups: dict[int, Group] = {}
    pending = b""
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            if not parse(line, groups):
                return 0
    end_groups(groups.values())
    return 0


if __name__ == "__main__":
    sys.exit(main())
