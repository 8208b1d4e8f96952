"""`supervisor stop` is kept across a supervisor restart, like a scale pin, until `start`."""

from __future__ import annotations

from tests.integration.harness import Supervisor, wait_until

BOTS = """
[bots.a]
ready_after_s = 0  # no SDK: ready at once
command = ["sleep", "1000"]
workers = 2
stop_timeout_s = "2s"

[bots.b]
ready_after_s = 0
command = ["sleep", "1000"]
workers = 3
stop_timeout_s = "2s"
"""


def _restart(sup: Supervisor) -> None:
    assert sup.cli("shutdown").returncode == 0
    assert sup.wait_exit() == 0
    sup.start()


def _states(sup: Supervisor, bot: str) -> dict[int, str]:
    return {w["slot"]: w["state"] for w in sup.bot(bot)["workers"]}


def test_a_stopped_bot_and_worker_stay_stopped_across_shutdown_and_run(sup: Supervisor) -> None:
    """A bot stopped by hand comes back stopped (no worker of it spawned), a worker stopped by
    hand comes back stopped while its siblings run; `start` clears both, and that is kept
    too."""
    sup.configure(BOTS)
    sup.start()
    sup.wait_running("a", 2)
    sup.wait_running("b", 3)
    assert sup.cli("stop", "a").returncode == 0
    assert sup.cli("stop", "b", "--worker", "1").returncode == 0
    _restart(sup)
    wait_until(lambda: _states(sup, "b") == {0: "running", 1: "stopped", 2: "running"})
    a = sup.bot("a")
    assert (a["state"], a["running"]) == ("stopped", 0)
    assert all(w["pid"] is None for w in a["workers"])
    assert [e["bot"] for e in sup.events("worker_spawned")].count("a") == 2  # the first run's
    assert sup.cli("start", "a").returncode == 0
    assert sup.cli("start", "b", "--worker", "1").returncode == 0
    sup.wait_running("a", 2)
    sup.wait_running("b", 3)
    _restart(sup)
    sup.wait_running("a", 2)
    sup.wait_running("b", 3)
