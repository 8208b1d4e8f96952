"""A bot's `needs`: while its Redis is down its exits are not counted, and it resumes alone."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.integration.harness import REPO, Supervisor, wait_until
from tests.services import PrivateRedis

# A worker that cannot work without Redis: it exits as soon as a PING fails. (A file, not
# `-c`: the script's escapes do not survive a TOML string.)
NEEDY = REPO / "tests" / "bots" / "needy.py"


def needy_bot(port: int) -> str:
    return f"""
[bots.needy]
ready_after_s = 0
command = [{sys.executable!r}, "{NEEDY}"]
env = {{ REDIS_PORT = "{port}" }}
workers = 2
max_restarts = 3
restart_window_s = "1m"
backoff_initial_s = "10ms"
backoff_max_s = "50ms"
stop_timeout_s = "2s"
needs = ["redis://127.0.0.1:{port}"]
"""


def test_redis_down_holds_restarts_and_the_bot_resumes(
    sup: Supervisor, private_redis: PrivateRedis
) -> None:
    """Redis stopped: the bot waits for it with a flat restart count; back: it runs again."""
    need = f"redis://127.0.0.1:{private_redis.port}"
    sup.configure(needy_bot(private_redis.port))
    sup.start()
    sup.wait_running("needy", 2)
    private_redis.stop()
    bot = wait_until(
        lambda: (b := sup.bot("needy"))["running"] == 0 and b["state"] == "waiting" and b,
        what="needy to wait for Redis",
    )
    assert bot["waiting_for"] == [need]
    restarts = bot["restarts"]
    for _ in range(20):  # many observations while it is down: nothing is restarted
        bot = sup.bot("needy")
        assert bot["restarts"] == restarts
        assert bot["running"] == 0
        assert not any(w["failure"] for w in bot["workers"])
    assert [e["need"] for e in sup.events("dependency_down")] == [need]

    private_redis.start()
    sup.wait_running("needy", 2, timeout_s=30)
    bot = sup.bot("needy")
    assert bot["restarts"] == restarts  # back without a manual start, nothing counted
    assert not any(w["failure"] for w in bot["workers"])
    assert bot["state"] != "failed"
    assert [e["need"] for e in sup.events("dependency_up")] == [need]
    assert not sup.events("worker_failed")


def test_bot_whose_need_is_down_at_start_waits(sup: Supervisor, tmp_path: Path) -> None:
    """A needed service that is down when the supervisor starts: the bot waits, spawns none."""
    server = PrivateRedis(tmp_path)  # never started: its port is free
    sup.configure(needy_bot(server.port))
    sup.start()
    bot = wait_until(lambda: (b := sup.bot("needy"))["state"] == "waiting" and b, what="wait")
    assert bot["waiting_for"] == [f"redis://127.0.0.1:{server.port}"]
    assert not sup.events("worker_spawned")
    server.start()
    try:
        sup.wait_running("needy", 2)
    finally:
        server.stop()
