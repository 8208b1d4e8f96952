"""Crash loops are judged per worker slot: a hammered slot fails alone, its siblings run."""

from __future__ import annotations

import os
import random
import signal
import time

from tests.integration.harness import Supervisor, pid_alive, wait_until

FOUR = """
[bots.four]
ready_after_s = 0  # no SDK: ready at once
command = ["sleep", "1000"]
workers = 4
max_restarts = 3
restart_window_s = "1m"
backoff_initial_s = "10ms"
backoff_max_s = "50ms"
stop_timeout_s = "2s"
"""


def _kill_slot_until_failed(sup: Supervisor, bot: str, slot: int) -> None:
    def failed() -> bool:
        worker = sup.bot(bot)["workers"][slot]
        if worker["state"] == "failed":
            return True
        if worker["pid"] is not None and worker["state"] == "running":
            os.kill(worker["pid"], signal.SIGKILL)
        return False

    wait_until(failed, what=f"slot {slot} to fail")


def test_one_slot_fails_alone_and_start_worker_revives_it(sup: Supervisor) -> None:
    """Slot 0 past max_restarts fails on its own; 1-3 keep their pids; start --worker 0 revives."""
    sup.configure(FOUR)
    sup.start()
    before = sup.wait_running("four", 4)
    _kill_slot_until_failed(sup, "four", 0)
    bot = sup.bot("four")
    assert bot["state"] == "degraded"
    assert bot["failure"] is None
    assert bot["workers"][0]["failure"] == "restarted 3 times within 60s"
    assert {s: p for s, p in sup.pids("four").items()} == {s: before[s] for s in (1, 2, 3)}
    assert sup.events("worker_failed")[0]["worker"] == 0
    assert not sup.events("bot_failed")

    started = sup.cli("start", "four", "--worker", "0")
    assert started.returncode == 0, started.stderr
    after = sup.wait_running("four", 4)
    assert {s: after[s] for s in (1, 2, 3)} == {s: before[s] for s in (1, 2, 3)}
    assert sup.bot("four")["workers"][0]["failure"] is None


def test_kill_storm_leaves_the_workers_that_did_not_fail_running(sup: Supervisor) -> None:
    """kill -9 of a random worker every 100 ms for ~5 s: the bot is not drained."""
    sup.configure(
        """
[bots.storm]
ready_after_s = 0
command = ["sleep", "1000"]
workers = 10
stop_timeout_s = "2s"
"""
    )
    sup.start()
    sup.wait_running("storm", 10)
    rng = random.Random(12)
    for _ in range(50):
        pids = list(sup.pids("storm").values())
        if pids:
            os.kill(rng.choice(pids), signal.SIGKILL)
        time.sleep(0.1)  # the storm's pace, not a wait for a result

    def settled() -> dict[str, object] | None:
        bot = sup.bot("storm")
        states = {w["state"] for w in bot["workers"]}
        return bot if states <= {"running", "failed"} else None

    bot = wait_until(settled, timeout_s=60.0, what="the storm's restarts to settle")
    assert bot["state"] != "failed"
    running = [w for w in bot["workers"] if w["state"] == "running"]
    assert running
    assert all(pid_alive(w["pid"]) for w in running)
    failed = [w for w in bot["workers"] if w["state"] == "failed"]
    assert len(running) + len(failed) == 10
