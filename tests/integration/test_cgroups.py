"""Resource isolation on this machine's real cgroups (issue 16).

Each test runs a real `supervisor run`; whatever happens, the fixture ends the supervisor and
then kills and removes the cgroup subtree that run_dir names, in every hierarchy.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.config import cgroup_host
from supervisor.daemon.helpers.guardian import cgroup_pids, end_trees
from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until

HOST = cgroup_host.read_host()
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or bool(HOST.cannot_create()),
    reason=f"needs root and writable cgroups ({HOST.cannot_create() or 'not root'})",
)
PY = sys.executable


def tree_name(sup: Supervisor) -> str:
    return "supervisor-" + hashlib.sha1(str(sup.run_dir).encode()).hexdigest()[:12]


def tree_dirs(sup: Supervisor) -> list[str]:
    return [os.path.join(h.directory, tree_name(sup)) for h in HOST.layout.hierarchies()]


@pytest.fixture
def csup() -> Iterator[Supervisor]:
    """A supervisor under test whose cgroups are gone afterwards, also when the test failed."""
    s = Supervisor()
    try:
        yield s
    finally:
        dirs = tree_dirs(s)
        try:
            s.cleanup()
        finally:
            end_trees(dirs)


def bot(name: str, sup: Supervisor, target: str, resources: str, extra: str = "") -> str:
    """A bot of tests/bots/cgroup_bots.py, exec'd (`python -m`) or with `fork` forked
    (`module`); it reports into a directory of its own."""
    (sup.dir / name).mkdir(exist_ok=True)
    how = (
        f'module = "tests.bots.cgroup_bots:{target}"'
        if "fork" in extra.split()
        else f'command = ["{PY}", "-m", "tests.bots.cgroup_bots", "{target}"]'
    )
    lines = "\n".join(x for x in extra.split("\n") if x.strip() != "fork")
    return f"""
[bots.{name}]
{how}
cwd = "{REPO}"
ready_after_s = 0
stop_timeout_s = 2
env = {{ REPORT_DIR = "{sup.dir / name}" }}
{lines}
[bots.{name}.resources]
{resources}
"""


def report(sup: Supervisor, name: str, kind: str, slot: int = 0, timeout_s: float = 15.0) -> str:
    path = sup.dir / name / f"{kind}.{slot}"
    wait_until(path.exists, timeout_s, what=f"{name}'s {path.name} to be written")
    return path.read_text()


def membership(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {"0": path, "memory": path, ...}."""
    found = {}
    for line in text.splitlines():
        ident, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [ident]:
            found[c] = path
    return found


def in_group(text: str, group: str) -> None:
    """The worker's first look at /proc/self/cgroup shows it in `group` (a regular
    expression for the path's end) in every hierarchy."""
    seen = membership(text)
    for h in HOST.layout.hierarchies():
        key = "0" if h.version == 2 else next(c for c in h.controllers if c in seen)
        assert re.fullmatch(f".*/{group}", seen[key]), (key, seen[key], group)


def test_workers_are_in_their_group_before_their_first_line(csup: Supervisor) -> None:
    """Exec'd, forked and preloaded (zygote) workers, per bot and per worker, are in their
    group when the bot's first statement runs; stopping a bot removes its groups, shutdown
    the whole tree."""
    csup.configure(
        bot("execd", csup, "report", 'per = "worker"\npids_max = 100', "workers = 2")
        + bot("forked", csup, "report", 'memory_max = "256MiB"', "fork\nworkers = 2")
        + bot(
            "pre", csup, "report_at_call", 'per = "worker"\npids_max = 100', "fork\npreload = true"
        )
    )
    csup.start()
    tree = tree_name(csup)
    in_group(report(csup, "pre", "cg", 0), rf"{tree}/pre/w0\.\d+")
    for slot in (0, 1):
        in_group(report(csup, "execd", "cg", slot), rf"{tree}/execd/w{slot}\.\d+")
        in_group(report(csup, "forked", "cg", slot), f"{tree}/forked")
    pids = csup.wait_running("forked", 2)
    forked = [os.path.join(d, "forked") for d in tree_dirs(csup)]
    assert set(pids.values()) <= cgroup_pids(forked[:1])
    assert csup.cli("stop", "execd").returncode == 0
    assert not any(os.path.exists(os.path.join(d, "execd")) for d in tree_dirs(csup))
    status = csup.bot("forked")["resources"]
    assert [f.split()[0] for f in status["in_force"]] == ["memory_max"]
    assert status["unavailable"] == []
    assert status["usage"]["pids"] >= 2
    assert csup.cli("shutdown").returncode == 0
    csup.wait_exit()
    assert not any(os.path.exists(d) for d in tree_dirs(csup))


def _check_read_only(sup: Supervisor) -> subprocess.CompletedProcess[str]:
    """`supervisor check` in a mount namespace of its own where every cgroup mount is read-only."""
    mounts = " ".join(sorted({h.mount_point for h in HOST.layout.hierarchies()}))
    script = (
        f"for m in {mounts}; do mount -o remount,bind,ro $m || exit 99; done; "
        f'exec "$0" -m supervisor check -c "$1"'
    )
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, PY]
    return subprocess.run(
        [*argv, str(sup.config_path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("required", [True, False])
def test_check_on_a_read_only_cgroup_mount(csup: Supervisor, required: bool) -> None:
    """Read-only cgroups: a bot with resources fails check (exit 2, its key path) unless
    resources_required = false, which passes with a warning."""
    extra = "" if required else "resources_required = false"
    csup.configure(bot("web", csup, "report", 'memory_max = "64MiB"', extra))
    out = _check_read_only(csup)
    assert out.returncode != 99, out.stderr
    first = out.stderr.splitlines()[0] if out.stderr else ""
    if required:
        assert out.returncode == 2, out
        assert first.startswith("supervisor: bots.web.resources: cgroups cannot be created: "), (
            first
        )
        assert "mounted read-only" in first
        assert "resources_required = false" in first
    else:
        assert out.returncode == 0, out
        assert first.startswith("supervisor: warning: bots.web.resources: cgroups cannot be"), first
    assert csup.cli("check").returncode == 0  # here, outside that namespace, it can


def test_memory_hog_is_oom_killed_in_its_group_and_restarted(csup: Supervisor) -> None:
    """A hog over memory_max is OOM-killed by the kernel inside its group, reported as an OOM
    exit and restarted; the supervisor and another bot are untouched."""
    csup.configure(
        bot("hog", csup, "hog", 'memory_max = "64MiB"\nper = "worker"', "backoff_initial_s = 0.1")
        + bot("calm", csup, "report", "pids_max = 50")
    )
    csup.start()
    calm = csup.wait_running("calm", 1)[0]
    oom = wait_until(lambda: csup.events("worker_oom_killed"), 60, "an OOM kill")[0]
    assert oom["bot"] == "hog"
    assert oom["memory_max"] == 64 << 20
    exited = next(e for e in csup.events("worker_exited") if e["pid"] == oom["pid"])
    assert exited["signal"] == signal.SIGKILL
    assert exited["reason"] == "oom"
    assert not exited["expected"]
    wait_until(lambda: len(csup.events("worker_spawned")) >= 3, 30, "the hog to be restarted")
    assert csup.proc is not None
    assert csup.proc.poll() is None
    assert csup.pids("calm") == {0: calm}
    assert csup.bot("hog")["resources"]["oom_kills"] >= 1


def test_a_restarted_worker_is_not_ended_with_its_predecessors_group(csup: Supervisor) -> None:
    """per = "worker": a worker that died leaves a daemon in its group; that group is ended at
    the stop timeout, while the worker restarted meanwhile runs on in a new group."""
    csup.configure(bot("d", csup, "daemonise", 'per = "worker"', "backoff_initial_s = 0.1"))
    csup.start()
    daemon = int(report(csup, "d", "daemon"))
    (csup.dir / "d" / "daemon.0").unlink()
    first = csup.wait_running("d", 1)[0]
    os.kill(first, signal.SIGKILL)
    new = wait_until(lambda: (p := csup.pids("d").get(0)) != first and p, 30, "a new worker")
    wait_until(lambda: not pid_alive(daemon), 30, "the old group's daemon to be killed")
    assert pid_alive(new)
    assert int(report(csup, "d", "daemon")) != daemon


def test_half_a_core_is_half_a_core(csup: Supervisor) -> None:
    """A burner with cpu = 0.5 gets at most about half a core, and the kernel throttles it,
    while a burner without a limit beside it gets more.

    Both are sampled from their groups' CPU time in the same status replies, both with the
    top cpu_weight to hold their own against the machine's other processes; if even so the
    unlimited one gets less than most of a core (a saturated host) and the limited one was
    never throttled, the limit never bit, and the test says so by skipping."""
    csup.configure(
        bot("burn", csup, "burn", "cpu = 0.5\ncpu_weight = 10000")
        + bot("free", csup, "burn", "cpu_weight = 10000")
    )
    csup.start()
    csup.wait_running("burn", 1)
    csup.wait_running("free", 1)

    def usage() -> tuple[float, dict[str, Any], dict[str, Any]]:
        bots = csup.status()["bots"]
        return (
            time.monotonic(),
            bots["burn"]["resources"]["usage"],
            bots["free"]["resources"]["usage"],
        )

    t0, burn0, free0 = usage()
    t1, burn1, free1 = wait_until(
        lambda: (u := usage())[1]["cpu_usage_s"] - burn0["cpu_usage_s"] >= 1.0 and u,
        60,
        "1 s of CPU",
    )
    burn = (burn1["cpu_usage_s"] - burn0["cpu_usage_s"]) / (t1 - t0)
    free = (free1["cpu_usage_s"] - free0["cpu_usage_s"]) / (t1 - t0)
    cpu = HOST.layout.hierarchy_of("cpu")
    assert cpu is not None
    group = os.path.join(cpu.directory, tree_name(csup), "burn")
    quota = "cpu.max" if cpu.version == 2 else "cpu.cfs_quota_us"
    assert Path(group, quota).read_text().split()[0] == "50000"
    throttled = burn1["cpu_throttled_s"] > burn0["cpu_throttled_s"]
    if free < 0.6 and not throttled:
        pytest.skip(f"the limit never bit: the unlimited burner got {free:.2f} of a core")
    assert burn < 0.58, (burn, free)  # 0.5, and the jitter of the status replies' timing
    assert throttled  # with a core free for it, it hit its quota


def test_pids_max_stops_a_fork_bomb_inside_its_group(csup: Supervisor) -> None:
    """fork() fails with EAGAIN at pids_max; the supervisor goes on, stop ends every child."""
    csup.configure(bot("bomb", csup, "fork_bomb", "pids_max = 20"))
    csup.start()
    children, _, error = report(csup, "bomb", "bomb", timeout_s=60).partition(" ")
    assert int(children) < 20
    assert "temporarily unavailable" in error.lower()
    assert csup.request("ping") is not None
    assert csup.cli("stop", "bomb").returncode == 0
    assert not any(os.path.exists(os.path.join(d, "bomb")) for d in tree_dirs(csup))


@pytest.mark.parametrize("how", ["stop", "shutdown", "kill -9"])
def test_a_daemonised_grandchild_is_gone_after(csup: Supervisor, how: str) -> None:
    """A worker's grandchild that left the process group, double-forked and ignores SIGTERM is
    killed with the group: after `stop`, `shutdown`, and a kill -9 of the supervisor (then by
    the guardian); the groups are removed."""
    csup.configure(bot("d", csup, "daemonise", ""))
    csup.start()
    daemon = int(report(csup, "d", "daemon"))
    assert os.getpgid(daemon) != csup.wait_running("d", 1)[0]
    if how == "stop":
        assert csup.cli("stop", "d").returncode == 0
        assert not pid_alive(daemon)
    elif how == "shutdown":
        assert csup.cli("shutdown").returncode == 0
        csup.wait_exit()
        assert not pid_alive(daemon)
    else:
        csup.kill9()
        wait_until(lambda: not pid_alive(daemon), 30, "the guardian to kill the daemon")
    wait_until(
        lambda: not any(os.path.exists(os.path.join(d, "d")) for d in tree_dirs(csup)),
        30,
        "the group to be removed",
    )


def test_a_group_that_cannot_be_made_leaves_the_bot_degraded(csup: Supervisor) -> None:
    """The kernel refuses the limit (a cpu quota above the parent's, made by hand here): an
    event and a degraded bot whose workers run anyway, never a crash."""
    cpu = HOST.layout.hierarchy_of("cpu")
    if cpu is None or cpu.version != 1:
        pytest.skip("needs a v1 cpu hierarchy (its quota must fit in the parent's)")
    root = os.path.join(cpu.directory, tree_name(csup))
    os.mkdir(root)
    with open(os.path.join(root, "cpu.cfs_quota_us"), "w") as f:
        f.write("10000")  # 0.1 core for the whole tree
    csup.configure(bot("big", csup, "report", "cpu = 1"))
    csup.start()
    failed = wait_until(lambda: csup.events("cgroup_failed"), 30, "cgroup_failed")[0]
    assert failed["bot"] == "big"
    assert "Invalid argument" in failed["error"]
    wait_until(lambda: csup.bot("big")["state"] == "degraded", 30, "a degraded bot")
    report(csup, "big", "cg")  # it runs anyway
    assert csup.bot("big")["resources"]["degraded"]


def test_group_usage_reaches_status_and_metrics(csup: Supervisor) -> None:
    """Memory (with cache and swap), pids, CPU and PSI come from the groups into status, and
    /metrics serves them with the limits in force."""
    csup.configure(
        bot(
            "w",
            csup,
            "report",
            'memory_max = "128MiB"\npids_max = 40\nper = "worker"',
            "workers = 2",
        )
        + '\n[plugins.monitor]\nlisten = "127.0.0.1:0"\ninterval_s = "250ms"\n'
    )
    csup.start()
    csup.wait_running("w", 2)
    status = csup.bot("w")
    usage = status["resources"]["usage"]
    assert usage["pids"] >= 2
    assert usage["memory_bytes"] > 0
    assert {"memory_cache_bytes", "memory_swap_bytes", "cpu_usage_s", "oom_kills"} <= set(usage)
    if os.path.exists("/proc/pressure/memory"):
        assert "memory_pressure_some_avg10" in usage
    assert all(w["cgroup"]["pids"] >= 1 for w in status["workers"])
    address = wait_until(lambda: csup.status()["plugins"]["monitor"]["listen"], what="monitor")
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
        text = r.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("supervisor_cgroup_pids", (("bot", "w"), ("worker", "")))] >= 2
    assert samples[("supervisor_cgroup_pids", (("bot", "w"), ("worker", "1")))] >= 1
    assert (
        samples[("supervisor_cgroup_limit", (("bot", "w"), ("limit", "memory_max")))] == 128 << 20
    )
    assert ("supervisor_cgroup_oom_kills_total", (("bot", "w"), ("worker", ""))) in samples
    table = csup.cli("status").stdout
    assert "cgroup per worker: memory_max" in table
