"""Restart propagation: dependents that ask for it restart after their dependency, in order."""

from __future__ import annotations

from tests.integration.harness import Supervisor, wait_until

CHAIN = """
[bots.base]
ready_after_s = 0
command = ["sleep", "1000"]
workers = 2
stop_timeout_s = "2s"

[bots.middle]
ready_after_s = 0
command = ["sleep", "1000"]
depends_on = ["base"]
on_dependency_restart = "restart"
stop_timeout_s = "2s"

[bots.top]
ready_after_s = 0
command = ["sleep", "1000"]
depends_on = ["middle"]
on_dependency_restart = "restart"
stop_timeout_s = "2s"

[bots.bystander]
ready_after_s = 0
command = ["sleep", "1000"]
depends_on = ["base"]
stop_timeout_s = "2s"
"""


def test_restart_propagates_in_depends_on_order(sup: Supervisor) -> None:
    """restart base: middle restarts once base is ready, then top; bystander (ignore) stays."""
    sup.configure(CHAIN)
    sup.start()
    before = {name: sup.wait_running(name, n) for name, n in (("base", 2), ("middle", 1),
              ("top", 1), ("bystander", 1))}  # fmt: skip
    restarted = sup.cli("restart", "base")
    assert restarted.returncode == 0, restarted.stderr

    def moved(name: str) -> bool:
        pids = sup.pids(name)
        return bool(pids) and all(pids.get(s) != p for s, p in before[name].items())

    wait_until(lambda: moved("top") and sup.bot("top")["state"] == "running", what="top")
    propagated = [(e["bot"], e["depends_on"]) for e in sup.events("restart_propagated")]
    assert propagated == [("middle", "base"), ("top", "middle")]
    spawned = [e["bot"] for e in sup.events("worker_spawned")][5:]  # after the first start
    assert spawned == ["base", "base", "middle", "top"]
    assert moved("base")
    assert moved("middle")
    assert sup.pids("bystander") == before["bystander"]


def test_rolling_restart_propagates(sup: Supervisor) -> None:
    """restart --rolling base replaces its workers one by one: middle still follows."""
    sup.configure(CHAIN)
    sup.start()
    middle = sup.wait_running("middle", 1)
    sup.wait_running("top", 1)
    rolled = sup.cli("restart", "base", "--rolling")
    assert rolled.returncode == 0, rolled.stderr
    wait_until(
        lambda: (p := sup.pids("middle")) and p != middle and sup.bot("top")["state"] == "running",
        what="middle to follow base",
    )
    assert ("middle", "base") in [
        (e["bot"], e["depends_on"]) for e in sup.events("restart_propagated")
    ]
