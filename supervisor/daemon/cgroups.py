"""The supervisor's cgroup subtree: groups for bots and workers, their limits, their end.

    <our cgroup>/supervisor-<id>/BOT/           per = "bot": the bot's workers are here
    <our cgroup>/supervisor-<id>/BOT/wSLOT.N/   per = "worker": one each (N: a serial, so
                                                a restarted worker never joins a dying one)

in each hierarchy we use: the unified (v2) one, and the v1 ones of cpu, memory, pids and
freezer where those are v1 (a hybrid host). `<id>` comes from run_dir, so a restarted
supervisor finds its last run's tree and ends what was left in it. The tree is made on the
first group and handed to the guardian, which kills what is in it if we die. Limits are
written as policy/cgroups.py maps them; the file I/O for joining and killing is shared with
the guardian and the fork server (helpers/guardian.py, stdlib only).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path

import structlog

from supervisor.config import cgroup_host
from supervisor.daemon.helpers import guardian as cg
from supervisor.daemon.helpers.handles import Guardian
from supervisor.policy.cgroups import Hierarchy, Host, Write

log = structlog.get_logger("supervisor.cgroups")


class Group:
    """One cgroup, as a directory in each hierarchy (the unified one first)."""

    def __init__(self, name: str, dirs: dict[Hierarchy, str]) -> None:
        self.name = name
        self.dirs = dirs

    @property
    def directories(self) -> list[str]:
        return list(self.dirs.values())

    @property
    def procs_files(self) -> list[str]:
        """What a worker writes its pid into, before it runs the bot's code."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def dir_of(self, controller: str) -> str | None:
        return next((d for h, d in self.dirs.items() if controller in h.controllers), None)

    def version_of(self, controller: str) -> int:
        """The hierarchy version a controller is used on here (0: not here)."""
        return next((h.version for h in self.dirs if controller in h.controllers), 0)

    @property
    def unified(self) -> str | None:
        return next((d for h, d in self.dirs.items() if h.version == 2), None)

    def pids(self) -> set[int]:
        return cg.cgroup_pids(self.directories)

    def signal(self, sig: int) -> int:
        """Signal every member (members need not be our children); returns how many."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        return len(pids)

    def kill(self) -> None:
        cg.kill_cgroups(self.directories)

    def remove(self) -> bool:
        return cg.remove_cgroups(self.directories)

    def write(self, writes: list[Write]) -> None:
        """Set limits; OSError if the kernel refuses one."""
        for w in writes:
            directory = self.dir_of(w.controller)
            if directory is None:
                continue
            with open(os.path.join(directory, w.file), "w") as f:
                f.write(w.value)

    def read(self, controller: str, file: str) -> str:
        directory = self.dir_of(controller) if controller else self.unified
        if directory is None:
            return ""
        try:
            with open(os.path.join(directory, file)) as f:
                return f.read()
        except OSError:
            return ""


class CgroupTree:
    """Our subtree in each hierarchy; made on first use, handed to the guardian."""

    def __init__(self, run_dir: Path, guardian: Guardian, host: Host | None = None) -> None:
        self.name = "supervisor-" + hashlib.sha1(str(run_dir).encode()).hexdigest()[:12]
        self._guardian = guardian
        self._host = host
        self.roots: dict[Hierarchy, str] = {}
        self.kill_file = False  # cgroup.kill in the unified hierarchy

    @property
    def host(self) -> Host:
        if self._host is None:
            self._host = cgroup_host.read_host()
        return self._host

    def make(self, parts: tuple[str, ...], writes: list[Write], controllers: list[str]) -> Group:
        """mkdir the group (and its parents) in each hierarchy, enable the v2 controllers
        the limits need on the way down, write the limits. OSError if any step fails."""
        if not self.roots:
            self._make_roots()
        dirs: dict[Hierarchy, str] = {}
        for h, root in self.roots.items():
            directory = root
            for part in parts:
                if h.version == 2 and controllers:
                    _enable(directory, controllers)
                directory = os.path.join(directory, part)
                with contextlib.suppress(FileExistsError):
                    os.mkdir(directory)
            dirs[h] = directory
        group = Group("/".join(parts), dirs)
        group.write(writes)
        return group

    def _make_roots(self) -> None:
        usable = [h for h in self.host.layout.hierarchies() if self.host.usable(h)]
        if not usable:
            raise OSError(errno.EACCES, self.host.cannot_create() or "no usable cgroup hierarchy")
        for h in usable:
            root = os.path.join(h.directory, self.name)
            with contextlib.suppress(FileExistsError):
                os.mkdir(root)
            self.roots[h] = root
        leftovers = cg.cgroup_pids(self.roots.values())
        if leftovers:  # a last run's, that neither it nor its guardian ended
            cg.kill_cgroups(self.roots.values())
            cg.wait_cgroups_empty(self.roots.values())
            log.warning("cgroup_leftovers_ended", processes=len(leftovers))
        for root in self.roots.values():
            self._guardian.add_tree(root)
        unified = next((r for h, r in self.roots.items() if h.version == 2), "")
        self.kill_file = bool(unified) and os.path.exists(os.path.join(unified, "cgroup.kill"))
        kind = self.host.layout.kind.value
        roots = list(self.roots.values())
        log.info("cgroup_tree_created", kind=kind, roots=roots, cgroup_kill=self.kill_file)

    def close(self) -> None:
        """Kill what is left in the tree and remove it (a clean shutdown)."""
        if self.roots:
            cg.end_trees(self.roots.values())
            self.roots = {}


def _enable(directory: str, controllers: list[str]) -> None:
    """Enable v2 controllers for a group's children (cgroup.subtree_control).

    The kernel refuses (EBUSY) while the group itself has processes ("no internal
    processes"): that is our own cgroup under systemd's Delegate=yes. Then our processes
    move to a leaf of their own first, as systemd's delegation docs advise.
    """
    control = os.path.join(directory, "cgroup.subtree_control")
    with open(control) as f:
        have = set(f.read().split())
    wanted = " ".join(f"+{c}" for c in controllers if c not in have)
    if not wanted:
        return
    try:
        _write(control, wanted)
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise
        leaf = os.path.join(directory, "supervisor.daemon")
        with contextlib.suppress(FileExistsError):
            os.mkdir(leaf)
        for pid in cg.cgroup_pids([directory]) - cg.cgroup_pids([leaf]):
            with contextlib.suppress(OSError):  # a process that just exited
                _write(os.path.join(leaf, "cgroup.procs"), str(pid))
        _write(control, wanted)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def parse_flat(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events, oom_control) -> ints."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            found[parts[0]] = int(parts[1])
    return found


def parse_psi(text: str) -> dict[str, float]:
    """A PSI file ("some avg10=0.12 avg60=... total=N") -> {"some_avg10": 0.12, ...}."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        for pair in pairs:
            key, _, value = pair.partition("=")
            if key in ("avg10", "avg60"):
                with contextlib.suppress(ValueError):
                    found[f"{kind}_{key}"] = float(value)
    return found


def group_stats(group: Group, light: bool = False) -> dict[str, float | int]:
    """CPU, memory (with cache and swap), pids and OOM kills of a group, PSI where present.

    light: CPU, memory and pids only (three reads: a worker's own group, for status)."""
    stats: dict[str, float | int] = {}
    cpu = parse_flat(group.read("", "cpu.stat"))  # v2: core accounting, without a controller
    if "usage_usec" in cpu:
        stats["cpu_usage_s"] = cpu["usage_usec"] / 1e6
    elif usage := group.read("cpuacct", "cpuacct.usage").strip():
        stats["cpu_usage_s"] = int(usage) / 1e9
    v2_memory = group.version_of("memory") == 2
    current = group.read("memory", "memory.current" if v2_memory else "memory.usage_in_bytes")
    if current.strip():
        stats["memory_bytes"] = int(current)
    if pids := group.read("pids", "pids.current").strip():
        stats["pids"] = int(pids)
    if light:
        return stats
    if group.version_of("cpu") == 2:
        stats["cpu_throttled_s"] = cpu.get("throttled_usec", 0) / 1e6
    elif group.version_of("cpu") == 1:
        v1 = parse_flat(group.read("cpu", "cpu.stat"))
        stats["cpu_throttled_s"] = v1.get("throttled_time", 0) / 1e9
    stats.update(_memory_detail(group, v2_memory))
    stats["oom_kills"] = oom_kills(group)
    for resource in ("memory", "cpu"):
        for key, value in parse_psi(group.read("", f"{resource}.pressure")).items():
            stats[f"{resource}_pressure_{key}"] = value
    return stats


def _memory_detail(group: Group, v2: bool) -> dict[str, int]:
    if group.version_of("memory") == 0:
        return {}
    stat = parse_flat(group.read("memory", "memory.stat"))
    if v2:
        swap = group.read("memory", "memory.swap.current").strip()
        return {
            "memory_cache_bytes": stat.get("file", 0),
            "memory_anon_bytes": stat.get("anon", 0),
            "memory_swap_bytes": int(swap or 0),
        }
    return {  # v1: the total_ keys count the groups below too (use_hierarchy)
        "memory_cache_bytes": stat.get("total_cache", stat.get("cache", 0)),
        "memory_anon_bytes": stat.get("total_rss", stat.get("rss", 0)),
        "memory_swap_bytes": stat.get("total_swap", stat.get("swap", 0)),
    }


def oom_kills(group: Group) -> int:
    """How many processes the kernel OOM-killed in the group (v2 memory.events, v1
    memory.oom_control's oom_kill, Linux 4.13+)."""
    if group.version_of("memory") == 2:
        return parse_flat(group.read("memory", "memory.events")).get("oom_kill", 0)
    return parse_flat(group.read("memory", "memory.oom_control")).get("oom_kill", 0)
