"""What the host's cgroups offer, and how each resource limit maps onto them. Pure.

Detection reads two texts the kernel gives every process, passed in:

    /proc/self/cgroup     "ID:CONTROLLERS:PATH" per hierarchy; "0::PATH" is the v2 one
    /proc/self/mountinfo  where each hierarchy is mounted, read-only or not, and with which
                          v1 controllers (the super options after " - cgroup cgroup rw,cpu")

A host is "v2" (one unified hierarchy with the controllers), "v1" (a hierarchy per
controller), "hybrid" (v1 controllers plus a v2 hierarchy for membership, `cgroup.kill` and
PSI, as systemd's hybrid mode and this project's CI host), or "none". A controller is used
where it is attached: v2 if the unified hierarchy has it (its cgroup.controllers), else its
v1 hierarchy. The limits map as the kernel documents (cgroup-v2.rst, cgroup-v1/*.rst):

    limit         v2                    v1
    cpu           cpu.max "Q 100000"    cpu.cfs_period_us 100000, cpu.cfs_quota_us Q
    cpu_weight    cpu.weight W          cpu.shares W*1024/100 (the default 100 -> 1024)
    memory_max    memory.max            memory.limit_in_bytes
    memory_high   memory.high           memory.soft_limit_in_bytes (reclaim under pressure,
                                        no throttle: v1 has nothing closer)
    pids_max      pids.max              pids.max
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from supervisor.config.resources import Resources

CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000  # the kernel refuses a cfs quota below 1 ms
CONTROLLER_OF = {
    "cpu": "cpu",
    "cpu_weight": "cpu",
    "memory_max": "memory",
    "memory_high": "memory",
    "pids_max": "pids",
}
# The v1 controllers we use: the three limits, and freezer to stop a group for a kill.
V1_CONTROLLERS = ("cpu", "memory", "pids", "freezer")


class Kind(enum.StrEnum):
    V2 = "v2"
    V1 = "v1"
    HYBRID = "hybrid"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """One mounted hierarchy and our cgroup in it."""

    version: int  # 1 or 2
    mount_point: str
    path: str  # our cgroup, relative to the mount ("/" at its root)
    controllers: frozenset[str]
    read_only: bool = False

    @property
    def directory(self) -> str:
        """Our cgroup's directory."""
        return self.mount_point.rstrip("/") + ("" if self.path == "/" else self.path)


@dataclass(frozen=True, slots=True)
class Layout:
    """The hierarchies this process is in that we can use."""

    unified: Hierarchy | None = None
    v1: Mapping[str, Hierarchy] = field(default_factory=dict)  # controller -> its hierarchy

    @property
    def kind(self) -> Kind:
        v1 = bool(self.v1)
        if self.unified is not None:
            return Kind.HYBRID if v1 else Kind.V2
        return Kind.V1 if v1 else Kind.NONE

    def hierarchy_of(self, controller: str) -> Hierarchy | None:
        """Where a controller is attached (v2 if the unified hierarchy has it)."""
        if self.unified is not None and controller in self.unified.controllers:
            return self.unified
        return self.v1.get(controller)

    def hierarchies(self) -> list[Hierarchy]:
        """Each hierarchy we place workers in: the unified one, then each v1 one we use."""
        found: list[Hierarchy] = [self.unified] if self.unified is not None else []
        for controller in V1_CONTROLLERS:
            h = self.v1.get(controller)
            if h is not None and h not in found:
                found.append(h)
        return found


def detect(proc_cgroup: str, mountinfo: str, v2_controllers: str = "") -> Layout:
    """The layout from /proc/self/cgroup, /proc/self/mountinfo and the text of our v2
    cgroup's cgroup.controllers (empty: none, as on a hybrid host)."""
    paths_v1: dict[str, str] = {}
    path_v2: str | None = None
    for line in proc_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            path_v2 = parts[2]
        else:
            for name in parts[1].split(","):
                paths_v1[name] = parts[2]
    unified: Hierarchy | None = None
    v1: dict[str, Hierarchy] = {}
    for mount in _cgroup_mounts(mountinfo):
        root, point, read_only, fstype, controllers = mount
        if fstype == "cgroup2" and path_v2 is not None and unified is None:
            path = _relative(path_v2, root)
            if path is not None:
                ctl = frozenset(v2_controllers.split())
                unified = Hierarchy(2, point, path, ctl, read_only)
        elif fstype == "cgroup":
            ours = [c for c in controllers if c in V1_CONTROLLERS and c in paths_v1]
            path = _relative(paths_v1[ours[0]], root) if ours else None
            if path is not None:
                h = Hierarchy(1, point, path, frozenset(controllers), read_only)
                for c in ours:
                    v1.setdefault(c, h)
    return Layout(unified, v1)


def _cgroup_mounts(mountinfo: str) -> list[tuple[str, str, bool, str, list[str]]]:
    """(root, mount point, read-only, fstype, v1 controllers) of each cgroup mount."""
    found = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = set(fields[5].split(",")) | set(tail[2].split(","))
        controllers = [o for o in tail[2].split(",") if o not in ("rw", "ro")]
        found.append((_unescape(fields[3]), _unescape(fields[4]), "ro" in options, tail[0],
                      controllers))  # fmt: skip
    return found


def _relative(path: str, root: str) -> str | None:
    """Our cgroup path as seen under a mount whose root is `root` (None: not under it)."""
    if root in ("/", ""):
        return path or "/"
    if path == root:
        return "/"
    return path[len(root) :] if path.startswith(root.rstrip("/") + "/") else None


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


# ---------------------------------------------------------------- what the host can give


@dataclass(frozen=True, slots=True)
class Host:
    """A layout and what I/O found out about it: which directories we may write to."""

    layout: Layout
    writable: frozenset[str] = frozenset()  # directories of ours where we can create groups

    def usable(self, h: Hierarchy) -> bool:
        return not h.read_only and h.directory in self.writable

    def cannot_create(self) -> str:
        """Why no group can be made here ("" if one can)."""
        layout = self.layout
        if layout.kind is Kind.NONE:
            return "this host has no cgroup hierarchy mounted"
        blocked = [h for h in layout.hierarchies() if not self.usable(h)]
        if not blocked or len(blocked) < len(layout.hierarchies()):
            return ""
        h = blocked[0]
        why = "mounted read-only" if h.read_only else "not writable by this user"
        return f"{h.directory} is {why}"


@dataclass(frozen=True, slots=True)
class Write:
    """One value to write into a group's file, in the hierarchy of `controller`."""

    controller: str
    file: str
    value: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The writes that set a bot's limits, and what the host cannot give."""

    writes: tuple[Write, ...]
    in_force: tuple[str, ...]  # limit names, with a note where v1 only approximates
    missing: tuple[str, ...]  # "memory_max (no memory controller)"


def plan(resources: Resources, host: Host) -> Plan:
    """Map each limit onto the hierarchy its controller is in (see the module table)."""
    writes: list[Write] = []
    in_force: list[str] = []
    missing: list[str] = []
    for name, value in resources.limits().items():
        controller = CONTROLLER_OF[name]
        h = host.layout.hierarchy_of(controller)
        if h is None or not host.usable(h):
            why = f"no {controller} controller" if h is None else f"{h.directory} not writable"
            missing.append(f"{name} ({why})")
            continue
        writes += limit_writes(name, value, h.version)
        approximate = name == "memory_high" and h.version == 1
        in_force.append(f"{name} (v1 soft limit)" if approximate else f"{name} (v{h.version})")
    return Plan(tuple(writes), tuple(in_force), tuple(missing))


def limit_writes(name: str, value: float, version: int) -> list[Write]:
    """The file writes of one limit on a v1 or v2 hierarchy (in the order to write them)."""
    if name == "cpu":
        quota = max(MIN_CPU_QUOTA_US, round(value * CPU_PERIOD_US))
        if version == 2:
            return [Write("cpu", "cpu.max", f"{quota} {CPU_PERIOD_US}")]
        return [
            Write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US)),
            Write("cpu", "cpu.cfs_quota_us", str(quota)),
        ]
    if name == "cpu_weight":
        if version == 2:
            return [Write("cpu", "cpu.weight", str(int(value)))]
        return [Write("cpu", "cpu.shares", str(max(2, int(value) * 1024 // 100)))]
    files = {
        "memory_max": ("memory.max", "memory.limit_in_bytes"),
        "memory_high": ("memory.high", "memory.soft_limit_in_bytes"),
        "pids_max": ("pids.max", "pids.max"),
    }
    v2_file, v1_file = files[name]
    return [Write(CONTROLLER_OF[name], v2_file if version == 2 else v1_file, str(int(value)))]


def host_verdict(resources: Resources, host: Host) -> str:
    """Why this host cannot give a bot its limits ("" if it can give them all)."""
    if not resources.enabled:
        return ""
    reason = host.cannot_create()
    if reason:
        return f"cgroups cannot be created: {reason}"
    missing = plan(resources, host).missing
    return "the host cannot give " + ", ".join(missing) if missing else ""


def controllers_to_enable(resources: Resources, layout: Layout) -> list[str]:
    """The v2 controllers a bot's limits need enabled in its parents' cgroup.subtree_control."""
    wanted = {CONTROLLER_OF[name] for name in resources.limits()}
    unified = layout.unified
    return sorted(c for c in wanted if unified is not None and c in unified.controllers)
