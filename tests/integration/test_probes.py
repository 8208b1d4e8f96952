"""Probes on real processes: liveness restarts, TCP and exec readiness, startup protection."""

from __future__ import annotations

import socket
import sys
from typing import Any

from tests.integration.harness import REPO, Supervisor, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def health_bot(name: str, probes: str, env: str = "") -> str:
    return f"""
[bots.{name}]
command = ["{sys.executable}", "-m", "tests.bots.health"]
cwd = "{REPO}"
port = {free_port()}
env = {{ {env} }}
{probes}
"""


def worker(sup: Supervisor, bot: str) -> dict[str, Any]:
    workers: list[dict[str, Any]] = sup.bot(bot)["workers"]
    return workers[0]


def test_failing_liveness_restarts_the_worker(sup: Supervisor) -> None:
    """/healthz turning 500 gets the worker a worker_unhealthy event and a new process."""
    fail = sup.dir / "fail"
    sup.configure(
        health_bot(
            "web",
            '[bots.web.probes.startup]\ntcp = "127.0.0.1:{port}"\n'
            "interval_s = 0.1\nfailure_threshold = 1000\n"
            '[bots.web.probes.liveness]\nhttp = "http://127.0.0.1:{port}/healthz"\n'
            "interval_s = 0.1\nfailure_threshold = 2\n",
            env=f'HEALTH_FAIL_FILE = "{fail}"',
        )
    )
    sup.start()
    old = sup.wait_running("web", 1)[0]
    wait_until(lambda: worker(sup, "web")["probes"]["liveness"]["last_result"] == "success")
    fail.touch()
    event = wait_until(lambda: sup.events("worker_unhealthy"), what="worker_unhealthy")[0]
    assert event["probe"] == "liveness"
    assert "500" in event["output"]
    fail.unlink()
    wait_until(lambda: sup.pids("web").get(0) not in (None, old), what="a new worker")


def test_tcp_readiness_waits_for_the_port(sup: Supervisor) -> None:
    """A TCP-probed bot is not ready while its port is closed, and is once it opens."""
    listen = sup.dir / "listen"
    sup.configure(
        health_bot(
            "tcp",
            '[bots.tcp.probes.readiness]\ntcp = "127.0.0.1:{port}"\ninterval_s = 0.1\n',
            env=f'HEALTH_LISTEN_FILE = "{listen}"',
        )
    )
    sup.start()
    wait_until(lambda: worker(sup, "tcp")["probes"]["readiness"]["failures"] >= 3)
    assert not worker(sup, "tcp")["ready"]
    listen.touch()
    sup.wait_running("tcp", 1)
    assert worker(sup, "tcp")["probes"]["readiness"]["state"] == "healthy"


def test_exec_probe_and_a_missing_probe_command(sup: Supervisor) -> None:
    """An exec readiness probe gates ready; a probe command that does not exist is a probe
    failure (the worker is restarted), never a supervisor crash."""
    marker = sup.dir / "ready-0"
    sup.configure(
        health_bot(
            "ex",
            f'[bots.ex.probes.readiness]\nexec = ["test", "-e", "{sup.dir}/ready-{{slot}}"]\n'
            "interval_s = 0.1\n",
        )
        + health_bot(
            "gone",
            '[bots.gone.probes.liveness]\nexec = ["/nonexistent/probe"]\n'
            "interval_s = 0.5\nfailure_threshold = 1\n",
        )
    )
    sup.start()
    wait_until(lambda: worker(sup, "ex")["probes"]["readiness"]["failures"] >= 2)
    assert not worker(sup, "ex")["ready"]
    marker.touch()
    sup.wait_running("ex", 1)
    event = wait_until(lambda: sup.events("worker_unhealthy"), what="worker_unhealthy")[0]
    assert event["bot"] == "gone"
    assert "cannot run /nonexistent/probe" in event["output"]
    wait_until(lambda: sup.bot("gone")["restarts"] >= 1, what="a restart")
    assert sup.request("ping")


def test_startup_probe_protects_a_slow_starter(sup: Supervisor) -> None:
    """While the startup probe has not passed, liveness does not run, so a slow starter
    survives more failed checks than liveness would allow."""
    listen = sup.dir / "listen"
    sup.configure(
        health_bot(
            "slow",
            '[bots.slow.probes.startup]\ntcp = "127.0.0.1:{port}"\n'
            "interval_s = 0.1\nfailure_threshold = 1000\n"
            '[bots.slow.probes.liveness]\nhttp = "http://127.0.0.1:{port}/healthz"\n'
            "interval_s = 0.1\nfailure_threshold = 1\n",
            env=f'HEALTH_LISTEN_FILE = "{listen}"',
        )
    )
    sup.start()
    wait_until(lambda: worker(sup, "slow")["probes"]["startup"]["failures"] >= 5)
    pid = worker(sup, "slow")["pid"]
    assert worker(sup, "slow")["probes"]["liveness"]["last_result"] is None
    listen.touch()
    wait_until(lambda: worker(sup, "slow")["probes"]["liveness"]["last_result"] == "success")
    assert worker(sup, "slow")["pid"] == pid
    assert not sup.events("worker_unhealthy")


def test_a_startup_probe_that_never_passes_restarts_the_worker(sup: Supervisor) -> None:
    """A startup probe at its failure threshold restarts the worker, as liveness would."""
    sup.configure(
        health_bot(
            "never",
            '[bots.never.probes.startup]\ntcp = "127.0.0.1:{port}"\n'
            "interval_s = 0.1\nfailure_threshold = 3\n",
            env=f'HEALTH_LISTEN_FILE = "{sup.dir}/never"',
        )
    )
    sup.start()
    event = wait_until(lambda: sup.events("worker_unhealthy"), what="worker_unhealthy")[0]
    assert event["probe"] == "startup"
    wait_until(lambda: sup.bot("never")["restarts"] >= 1, what="a restart")
