"""Scale-down stops the idlest workers (the SDK's w.busy), not the highest slots."""

from __future__ import annotations

from tests.integration.harness import REPO, Supervisor, wait_until


def test_scale_down_keeps_the_busy_worker_and_fills_the_hole_first(sup: Supervisor) -> None:
    """Four SDK workers, the highest slot busy and three idle: pinned to 1, the three idle
    ones stop and the busy one keeps its process (slot numbers are not renumbered, so
    status lists slot 3 alone); scaled to 2 again, the lowest hole (slot 0) is filled."""
    sup.configure(
        f"""
[bots.h]
module = "tests.bots.holder:main"
cwd = "{REPO}"
workers = 4
readiness = "sdk"
stop_timeout_s = "2s"
env = {{ BUSY_SLOT = "3" }}
"""
    )
    sup.start()
    pids = sup.wait_running("h", 4)
    wait_until(
        lambda: (
            {w["slot"]: w["metrics"].get("busy") for w in sup.bot("h")["workers"]}
            == {0: 0, 1: 0, 2: 0, 3: 1}
        ),
        what="every worker's busy gauge",
    )
    assert sup.cli("scale", "h", "1").returncode == 0
    assert sup.wait_running("h", 1) == {3: pids[3]}
    wait_until(lambda: [w["slot"] for w in sup.bot("h")["workers"]] == [3], what="no old slots")
    stopped = {e["worker"] for e in sup.events("worker_exited")}
    assert stopped == {0, 1, 2}
    assert sup.cli("scale", "h", "2").returncode == 0
    after = sup.wait_running("h", 2)
    assert set(after) == {0, 3}
    assert after[3] == pids[3]
