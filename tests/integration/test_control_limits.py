"""The control socket under load: a flooding client is refused and counted while the others
are served, and a status of 2,000 real workers stays under the reply budget."""

from __future__ import annotations

import threading

import msgpack
import pytest
import zmq

from supervisor.config.rundir import control_path
from supervisor.daemon import status_fit
from supervisor.wire import protocol
from supervisor.wire.transport import endpoint
from tests.integration.harness import Supervisor, pid_alive, wait_until

ONE_BOT = """
[bots.idle]
command = ["sleep", "1000"]
ready_after_s = 0
stop_timeout_s = "1s"
"""


def flood(sup: Supervisor, stop: threading.Event, sent: list[int]) -> None:
    """One DEALER peer sending pings as fast as it can, reading replies only to count them."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.connect(endpoint(control_path(sup.run_dir)))
    ping = [b"", protocol.encode_request(protocol.Request(1, "ping", {}))]
    try:
        while not stop.is_set():
            for _ in range(500):
                try:
                    sock.send_multipart(ping, zmq.NOBLOCK)
                    sent[0] += 1
                except zmq.Again:
                    break
            while sock.poll(0):
                sock.recv_multipart()
    finally:
        sock.close()
        ctx.term()


def _rate_limited(sup: Supervisor) -> int:
    dropped: dict[str, int] = sup.status()["supervisor"]["control"]["dropped"]
    return dropped.get("rate_limited", 0)


def test_a_flooding_client_cannot_starve_the_others(sup: Supervisor) -> None:
    """While the supervisor is refusing a flooding peer (seen in its counts, not guessed
    from what the peer queued on its side), other clients are answered on the first try."""
    sup.configure(ONE_BOT)
    sup.start()
    sup.wait_running("idle", 1)
    stop, sent = threading.Event(), [0]
    flooder = threading.Thread(target=flood, args=(sup, stop, sent))
    flooder.start()
    try:
        # `sent` counts frames put in the flooder's own queue (SNDHWM 100,000): it passes
        # 20,000 before a starved supervisor has read a burst's worth. Wait for the refusals.
        wait_until(lambda: _rate_limited(sup), timeout_s=60, what="the flood to be refused")
        # Under the flood, other clients are answered, each on its first try.
        for _ in range(10):
            assert sup.request("status", timeout_s=30)["bots"]["idle"]["running"] == 1
        out = sup.cli("status")
        assert out.returncode == 0, out.stderr
    finally:
        stop.set()
        flooder.join(timeout=30)
    control = sup.status()["supervisor"]["control"]
    assert control["dropped"].get("rate_limited", 0) > 0, control
    assert control["admitted"] > 0
    assert pid_alive(sup.pid)
    sup.request("shutdown")
    assert sup.wait_exit() == 0


@pytest.mark.timeout(600)  # 2,000 spawns and stops: minutes on a machine shared by seven
def test_status_of_2000_workers_stays_under_the_reply_budget(sup: Supervisor) -> None:
    """2,000 real `sleep` processes (about 1 MiB of memory each, gone with the fleet)."""
    sup.configure(ONE_BOT.replace('stop_timeout_s = "1s"', 'stop_timeout_s = "1s"\nworkers = 2000'))
    sup.start(timeout_s=120)  # the control socket answers once 2,000 spawns are under way
    sup.wait_running("idle", 2000, timeout_s=300)
    raw = msgpack.packb(sup.request("status", timeout_s=60))
    assert len(raw) <= status_fit.BUDGET_BYTES < protocol.MAX_REPLY_FRAME_BYTES
    status = msgpack.unpackb(raw)
    bot = status["bots"]["idle"]
    # Either every worker is listed, or the reply says what it left out.
    assert len(bot["workers"]) == 2000 or (status["trimmed"] and bot["workers_total"] == 2000)
    assert bot["running"] == 2000
    out = sup.cli("status", timeout_s=120)
    assert out.returncode == 0, out.stderr
    pids = [w["pid"] for w in bot["workers"]]
    sup.request("shutdown", timeout_s=120)
    assert sup.wait_exit(timeout_s=300) == 0
    assert not [p for p in pids if pid_alive(p)]
