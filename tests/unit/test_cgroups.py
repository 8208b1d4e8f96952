"""Cgroup detection, limit units and the v1/v2 mapping: pure functions over given texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import cgroup_host
from supervisor.config import model as config
from supervisor.config.fields import BadValue
from supervisor.config.resources import Per, Resources, cpu_cores, memory_bytes, weight
from supervisor.policy import cgroups
from supervisor.policy.cgroups import Host, Kind, Layout, Write

# ---------------------------------------------------------------- host texts

HYBRID_CGROUP = """9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/f5b7
2:cpuacct:/
1:cpu:/
0::/
"""
HYBRID_MOUNTS = """31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2_CGROUP = "0::/system.slice/bots.service\n"
V2_MOUNTS = "25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n"
V1_CGROUP = """5:pids:/user.slice
4:freezer:/
3:memory:/user.slice
2:cpu,cpuacct:/user.slice
"""
V1_MOUNTS = """30 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 24 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
32 24 0:28 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
33 24 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
"""
# A container: the cgroup2 mount is read-only and its root is the container's own group.
RO_CGROUP = "0::/kubepods/pod1/c1\n"
RO_MOUNTS = "600 590 0:30 /kubepods/pod1 /sys/fs/cgroup ro,nosuid - cgroup2 cgroup ro\n"
NONE_MOUNTS = "22 1 0:20 / /proc rw - proc proc rw\n"


@pytest.mark.parametrize(
    ("proc", "mounts", "controllers", "kind", "where"),
    [
        # this project's CI host: v1 controllers, a v2 hierarchy without any
        (
            HYBRID_CGROUP,
            HYBRID_MOUNTS,
            "",
            Kind.HYBRID,
            {
                "memory": "/sys/fs/cgroup/memory/process_api/f5b7",
                "cpu": "/sys/fs/cgroup/cpu",
                "pids": "/sys/fs/cgroup/pids",
                "freezer": "/sys/fs/cgroup/freezer",
            },
        ),
        # hybrid again, but the kernel's v2 hierarchy has memory: v2 wins for it
        (
            HYBRID_CGROUP.replace("4:memory:/process_api/f5b7\n", ""),
            HYBRID_MOUNTS.replace("/sys/fs/cgroup/memory rw,relatime", "/x rw"),
            "memory",
            Kind.HYBRID,
            {"memory": "/sys/fs/cgroup/unified", "cpu": "/sys/fs/cgroup/cpu"},
        ),
        # a systemd v2 host: everything in one hierarchy, under our service's group
        (
            V2_CGROUP,
            V2_MOUNTS,
            "cpu memory pids",
            Kind.V2,
            {
                "memory": "/sys/fs/cgroup/system.slice/bots.service",
                "cpu": "/sys/fs/cgroup/system.slice/bots.service",
                "pids": "/sys/fs/cgroup/system.slice/bots.service",
                "freezer": None,  # v2 freezes with cgroup.freeze, not a controller
            },
        ),
        # an old v1 host: cpu and cpuacct mounted together
        (
            V1_CGROUP,
            V1_MOUNTS,
            "",
            Kind.V1,
            {
                "cpu": "/sys/fs/cgroup/cpu,cpuacct/user.slice",
                "memory": "/sys/fs/cgroup/memory/user.slice",
                "freezer": "/sys/fs/cgroup/freezer",
            },
        ),
        # a container: the mount's root is the pod's group, ours is one below
        (RO_CGROUP, RO_MOUNTS, "memory", Kind.V2, {"memory": "/sys/fs/cgroup/c1"}),
        # no cgroups at all
        ("0::/\n", NONE_MOUNTS, "", Kind.NONE, {"memory": None, "cpu": None}),
    ],
)
def test_detection_finds_each_controllers_hierarchy(
    proc: str, mounts: str, controllers: str, kind: Kind, where: dict[str, str | None]
) -> None:
    """Each controller is used where it is attached; our group is found under its mount."""
    layout = cgroups.detect(proc, mounts, controllers)
    assert layout.kind is kind
    for controller, directory in where.items():
        h = layout.hierarchy_of(controller)
        assert (h.directory if h else None) == directory, controller


def test_read_only_mount_is_seen_and_named() -> None:
    """A read-only cgroup mount (a container's default) means no group can be made."""
    layout = cgroups.detect(RO_CGROUP, RO_MOUNTS, "memory")
    assert layout.unified is not None
    assert layout.unified.read_only
    host = Host(layout, writable=frozenset())
    assert host.cannot_create() == "/sys/fs/cgroup/c1 is mounted read-only"


@pytest.mark.parametrize(
    ("layout_texts", "writable", "reason"),
    [
        (("0::/\n", NONE_MOUNTS), set(), "this host has no cgroup hierarchy mounted"),
        ((V2_CGROUP, V2_MOUNTS), set(), "is not writable by this user"),
        ((V2_CGROUP, V2_MOUNTS), {"/sys/fs/cgroup/system.slice/bots.service"}, ""),
    ],
)
def test_cannot_create_says_why(
    layout_texts: tuple[str, str], writable: set[str], reason: str
) -> None:
    """No hierarchy, or none we may write to: a reason; else none."""
    host = Host(cgroups.detect(*layout_texts, "cpu memory pids"), frozenset(writable))
    found = host.cannot_create()
    assert (reason in found) if reason else found == ""


def test_hybrid_places_workers_in_the_unified_and_each_v1_hierarchy() -> None:
    """Membership in the v2 hierarchy (cgroup.kill, PSI) and in each v1 one for its limits."""
    layout = cgroups.detect(HYBRID_CGROUP, HYBRID_MOUNTS, "")
    assert [h.mount_point for h in layout.hierarchies()] == [
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/freezer",
    ]


def test_mountinfo_escapes_are_undone() -> None:
    r"""A mount point with a space is written \040 in mountinfo."""
    mounts = "41 31 0:38 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n"
    layout = cgroups.detect("0::/\n", mounts, "")
    assert layout.unified is not None
    assert layout.unified.mount_point == "/mnt/cg two"


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("name", "value", "version", "writes"),
    [
        ("cpu", 0.5, 2, [("cpu", "cpu.max", "50000 100000")]),
        ("cpu", 1.5, 1, [("cpu", "cpu.cfs_period_us", "100000"), ("cpu", "cpu.cfs_quota_us", "150000")]),
        ("cpu", 0.001, 2, [("cpu", "cpu.max", "1000 100000")]),  # the kernel's 1 ms minimum
        ("cpu_weight", 100, 2, [("cpu", "cpu.weight", "100")]),
        ("cpu_weight", 100, 1, [("cpu", "cpu.shares", "1024")]),  # both defaults
        ("cpu_weight", 1, 1, [("cpu", "cpu.shares", "10")]),
        ("cpu_weight", 10000, 1, [("cpu", "cpu.shares", "102400")]),
        ("memory_max", 1 << 29, 2, [("memory", "memory.max", "536870912")]),
        ("memory_max", 1 << 29, 1, [("memory", "memory.limit_in_bytes", "536870912")]),
        ("memory_high", 1 << 28, 2, [("memory", "memory.high", "268435456")]),
        ("memory_high", 1 << 28, 1, [("memory", "memory.soft_limit_in_bytes", "268435456")]),
        ("pids_max", 64, 2, [("pids", "pids.max", "64")]),
        ("pids_max", 64, 1, [("pids", "pids.max", "64")]),
    ],
)  # fmt: skip
def test_each_limit_maps_to_its_v1_and_v2_files(
    name: str, value: float, version: int, writes: list[tuple[str, str, str]]
) -> None:
    """The kernel's files and units for each limit, on either hierarchy version."""
    assert cgroups.limit_writes(name, value, version) == [Write(*w) for w in writes]


def _hybrid_host(layout: Layout) -> Host:
    return Host(layout, frozenset(h.directory for h in layout.hierarchies()))


def test_plan_says_what_is_in_force_and_what_the_host_cannot_give() -> None:
    """Without a pids hierarchy, pids_max is named as missing; memory_high is a v1 soft limit."""
    layout = cgroups.detect(
        HYBRID_CGROUP.replace("8:pids:/\n", ""), HYBRID_MOUNTS.replace("rw,pids", "rw,nope"), ""
    )
    plan = cgroups.plan(Resources(cpu=1, memory_high=1 << 28, pids_max=9), _hybrid_host(layout))
    assert plan.in_force == ("cpu (v1)", "memory_high (v1 soft limit)")
    assert plan.missing == ("pids_max (no pids controller)",)
    assert [w.file for w in plan.writes] == [
        "cpu.cfs_period_us",
        "cpu.cfs_quota_us",
        "memory.soft_limit_in_bytes",
    ]


def test_v2_limits_ask_for_their_controllers_to_be_enabled() -> None:
    layout = cgroups.detect(V2_CGROUP, V2_MOUNTS, "cpu memory pids io")
    wanted = cgroups.controllers_to_enable(Resources(cpu=1, memory_max=1 << 30), layout)
    assert wanted == ["cpu", "memory"]
    hybrid = cgroups.detect(HYBRID_CGROUP, HYBRID_MOUNTS, "")
    assert cgroups.controllers_to_enable(Resources(cpu=1), hybrid) == []


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("value", "cores"),
    [(1.5, 1.5), (2, 2.0), ("500m", 0.5), ("50%", 0.5), (" 250 m ", 0.25), (".5", 0.5)],
)
def test_cpu_units(value: object, cores: float) -> None:
    """Cores as a number, Kubernetes millicores, or a percentage of one core."""
    assert cpu_cores(value) == pytest.approx(cores)


@pytest.mark.parametrize("value", [0, -1, "0m", "half", "1.5 cores", True, [1]])
def test_bad_cpu_units(value: object) -> None:
    with pytest.raises(BadValue, match="expected a number of cores > 0"):
        cpu_cores(value)


@pytest.mark.parametrize(
    ("value", "size"), [("512MiB", 512 << 20), ("1GiB", 1 << 30), (1 << 20, 1 << 20)]
)
def test_memory_units(value: object, size: int) -> None:
    assert memory_bytes(value) == size


@pytest.mark.parametrize(
    ("value", "message"),
    [("1KiB", "at least 1MiB"), ("lots", "expected a size"), (-5, "expected a size")],
)
def test_bad_memory_units(value: object, message: str) -> None:
    with pytest.raises(BadValue, match=message):
        memory_bytes(value)


@pytest.mark.parametrize(("value", "ok"), [(1, True), (10000, True), (0, False), (10001, False)])
def test_cpu_weight_range(value: int, ok: bool) -> None:
    if ok:
        assert weight(value) == value
    else:
        with pytest.raises(BadValue):
            weight(value)


# ---------------------------------------------------------------- config and check


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    return path


def test_resources_table_is_parsed(tmp_path: Path) -> None:
    text = (
        '[bots.web]\ncommand = ["true"]\nworkers = 3\nresources_required = false\n'
        '[bots.web.resources]\ncpu = "500m"\ncpu_weight = 50\nmemory_max = "512MiB"\n'
        'memory_high = "400MiB"\npids_max = 64\nper = "worker"\n'
    )
    res = config.load(write(tmp_path, text)).bots["web"].resources
    assert res == Resources(0.5, 50, 512 << 20, 400 << 20, 64, Per.WORKER, False, True)


def test_no_resources_table_means_no_groups(tmp_path: Path) -> None:
    res = config.load(write(tmp_path, '[bots.web]\ncommand = ["true"]\n')).bots["web"].resources
    assert not res.enabled
    assert res.empty


NO_HOST = Host(cgroups.detect("0::/\n", NONE_MOUNTS, ""))


def test_check_fails_a_bot_whose_limits_the_host_cannot_give() -> None:
    """Required (the default): an error naming the bot's resources; else a warning."""
    errors, warnings = cgroup_host.resource_problems(
        [("web", Resources(memory_max=1 << 30, enabled=True)),
         ("lax", Resources(cpu=1, required=False, enabled=True)),
         ("plain", Resources())],
        NO_HOST,
    )  # fmt: skip
    assert errors == [
        "bots.web.resources: cgroups cannot be created: this host has no cgroup hierarchy "
        "mounted (set resources_required = false to run without them)"
    ]
    assert warnings == [
        "bots.lax.resources: cgroups cannot be created: this host has no cgroup hierarchy "
        "mounted; running without them"
    ]


def test_check_fails_a_limit_whose_controller_is_missing() -> None:
    layout = cgroups.detect(
        HYBRID_CGROUP.replace("8:pids:/\n", ""), HYBRID_MOUNTS.replace("rw,pids", "rw,nope"), ""
    )
    errors, _ = cgroup_host.resource_problems(
        [("web", Resources(pids_max=5, enabled=True))], _hybrid_host(layout)
    )
    assert errors == [
        "bots.web.resources: the host cannot give pids_max (no pids controller) "
        "(set resources_required = false to run without them)"
    ]
