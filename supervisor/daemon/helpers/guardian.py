"""The guardian: ends the fleet if the supervisor dies without doing so.

A `kill -9` of the supervisor gives it no chance to stop its workers, and a
parent-death signal would reach only the direct children, not the
grandchildren in their process groups. So the supervisor starts this small
process (stdlib only, run as `python -I -S guardian.py`, in a session of
its own) and keeps it told, over a pipe, which process groups it owns:

    add PGID START_TICKS SIGNAL TIMEOUT_S     a worker group was started
    del PGID                                  it is gone
    tree DIR                                  the supervisor's cgroup subtree in one hierarchy
    bye                                       clean shutdown; nothing to do

When the pipe ends without `bye`, the supervisor is gone: the guardian sends
each group its stop signal, waits up to its stop timeout, SIGKILLs what is
left, then kills whatever is still in the supervisor's cgroup subtree (a
daemonised grandchild that left its process group) and removes it, and exits.
`end_groups` is also what a restarted supervisor runs on the leftovers named in
its state file, as a last resort.

A group is signalled only if it is provably still ours: its leader is alive
with the recorded start time, or the leader is gone while members remain
(Linux never reuses a pid as long as a process group of that id exists) and,
for groups read back from a state file, a member carries our run dir in its
environment.
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


def still_ours(group: Group, marker: bytes | None = None) -> bool:
    """The leader is alive with its recorded start time, or it is gone while the group lives.

    A live guardian knows its groups first-hand, and a group's id is not reused while the
    group exists, so a leaderless group is ours. Read from a state file after a restart it
    may not be: the group may have ended and its pid gone to another program, whose leader
    then left members behind. Then `marker` (b"SUPERVISOR_RUN_DIR=<run dir>") must be in the
    environment of one of its members, as it is in every process our workers start.
    """
    ticks = start_ticks(group.pgid)
    if ticks == group.start_ticks:
        return True
    if ticks is not None or not _exists(group.pgid):
        return False
    return marker is None or any(_has_marker(pid, marker) for pid in _members(group.pgid))


def _members(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(int(entry))) and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


def _exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True


def end_groups(groups: Iterable[Group], marker: bytes | None = None) -> int:
    """Stop signal to each group still ours, SIGKILL at its deadline; returns how many.

    `marker`: see `still_ours`; given for groups named by a state file.
    """
    deadlines: dict[int, float] = {}
    for g in groups:
        if still_ours(g, marker):
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


# ---------------------------------------------------------------- cgroups (also the daemon's)

_KILL_WAIT_S = 5.0


def enter_cgroups(procs_files: Iterable[str]) -> None:
    """Move this process into a group: its cgroup.procs in each hierarchy (before the bot runs)."""
    me = str(os.getpid()).encode()
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, me)
        finally:
            os.close(fd)


def cgroup_pids(directories: Iterable[str]) -> set[int]:
    """Every process in these groups and the groups below them."""
    found: set[int] = set()
    for top in directories:
        for directory, _, _ in os.walk(top):
            with contextlib.suppress(OSError), open(os.path.join(directory, "cgroup.procs")) as f:
                found.update(int(p) for p in f.read().split())
    return found


def kill_cgroups(directories: Iterable[str]) -> None:
    """SIGKILL everything in the groups (and below): cgroup.kill where the kernel has it, else
    freeze (v2 cgroup.freeze or the v1 freezer), SIGKILL each process, thaw. Frozen, nothing
    can fork away while its siblings are killed one by one."""
    dirs = list(directories)
    rest = [d for d in dirs if not _write(os.path.join(d, "cgroup.kill"), "1")]
    if len(rest) < len(dirs):
        return  # a v2 group holds every member, whichever v1 groups it is in too
    frozen = [d for d in rest if _freeze(d, True)]
    for _ in range(3):  # unfrozen: kill again what forked in between
        pids = cgroup_pids(rest)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if frozen or not pids:
            break
    for d in frozen:
        _freeze(d, False)


def wait_cgroups_empty(directories: Iterable[str], timeout_s: float = _KILL_WAIT_S) -> bool:
    dirs = list(directories)
    deadline = time.monotonic() + timeout_s
    while cgroup_pids(dirs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def remove_cgroups(directories: Iterable[str]) -> bool:
    """rmdir each group, deepest first; False if one is still busy (or cannot be removed)."""
    ok = True
    for top in directories:
        for directory, _, _ in os.walk(top, topdown=False):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:
                ok = False
    return ok


def end_trees(trees: Iterable[str]) -> None:
    """Kill everything left in the supervisor's subtrees and remove them."""
    dirs = [t for t in trees if os.path.isdir(t)]
    if dirs:
        kill_cgroups(dirs)
        wait_cgroups_empty(dirs)
        remove_cgroups(dirs)


def _freeze(directory: str, frozen: bool) -> bool:
    if os.path.exists(os.path.join(directory, "cgroup.freeze")):
        return _write(os.path.join(directory, "cgroup.freeze"), "1" if frozen else "0")
    state = os.path.join(directory, "freezer.state")
    if not _write(state, "FROZEN" if frozen else "THAWED"):
        return False
    deadline = time.monotonic() + _KILL_WAIT_S
    while frozen and time.monotonic() < deadline:  # FREEZING until every task stopped
        with contextlib.suppress(OSError), open(state) as f:
            if f.read().strip() == "FROZEN":
                break
        time.sleep(0.001)
    return True


def _write(path: str, value: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, value.encode())
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def parse(line: bytes, groups: dict[int, Group], trees: list[str] | None = None) -> bool:
    """Apply one command line; False on `bye`."""
    parts = line.split()
    if not parts:
        return True
    if parts[0] == b"bye":
        return False
    if parts[0] == b"tree" and len(parts) == 2 and trees is not None:
        trees.append(os.fsdecode(parts[1]))
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
    trees: list[str] = []
    pending = b""
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            if not parse(line, groups, trees):
                return 0
    end_groups(groups.values())
    end_trees(trees)
    return 0


if __name__ == "__main__":
    sys.exit(main())
