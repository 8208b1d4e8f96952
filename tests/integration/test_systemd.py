"""Under systemd: READY=1 once the fleet is up, WATCHDOG=1 pings, STOPPING=1 at shutdown,
read from a real unix datagram socket given to a real `supervisor run` as NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Supervisor, wait_until


class NotifySocket:
    """What systemd listens on: a datagram socket; collects every message sent to it."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def received(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def has(self, message: str) -> bool:
        return message in self.received()

    def count(self, message: str) -> int:
        return self.received().count(message)


@pytest.fixture
def notify_path(sup: Supervisor) -> Iterator[NotifySocket]:
    s = NotifySocket(str(sup.dir / "notify"))
    yield s
    s.sock.close()


def gated_bot(gate: Path) -> str:
    """An SDK bot that says READY only once the gate file exists, and tells its environment."""
    start = "import asyncio, tests.bots.sdk as b; asyncio.run(b.main())"
    return f"""
[bots.gated]
command = ["sh", "-c", "echo notify=${{NOTIFY_SOCKET:-none}} watchdog=${{WATCHDOG_USEC:-none}}; while [ ! -e {gate} ]; do sleep 0.01; done; exec {sys.executable} -c '{start}'"]
readiness = "sdk"
ready_timeout_s = 0
stop_timeout_s = "5s"

[bots.plain]
command = ["sleep", "1000"]
ready_after_s = 0

[bots.after]
command = ["sleep", "1000"]
ready_after_s = 0
depends_on = ["gated"]
"""


def test_ready_waits_for_the_fleet_then_watchdog_pings_and_stopping(
    sup: Supervisor, notify_path: NotifySocket
) -> None:
    """STATUS names the bots still starting (also one waiting for it) and READY=1 waits for
    them; WATCHDOG=1 comes at half of WATCHDOG_USEC; a reload is RELOADING=1 then READY=1;
    STOPPING=1 comes at shutdown; workers inherit none of it."""
    gate = sup.dir / "gate"
    sup.configure(gated_bot(gate))
    sup.start(env={"NOTIFY_SOCKET": str(sup.dir / "notify"), "WATCHDOG_USEC": "200000"})
    wait_until(lambda: notify_path.has("STATUS=starting: gated, after"), what="a starting status")
    wait_until(lambda: sup.bot("plain")["state"] == "running", what="plain to run")
    assert sup.bot("gated")["state"] == "starting"
    wait_until(lambda: notify_path.count("WATCHDOG=1") >= 3, what="three watchdog pings")
    assert "READY=1\nSTATUS=running" not in notify_path.received()

    gate.touch()
    wait_until(lambda: notify_path.has("READY=1\nSTATUS=running"), what="READY=1")
    assert sup.bot("gated")["state"] == "running"
    assert sup.bot("after")["state"] == "running"
    assert notify_path.count("READY=1\nSTATUS=running") == 1
    pings = notify_path.count("WATCHDOG=1")
    wait_until(lambda: notify_path.count("WATCHDOG=1") > pings, what="pings after READY")

    sup.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    reloading = wait_until(
        lambda: [m for m in notify_path.received() if m.startswith("RELOADING=1\nMONOTONIC_USEC=")],
        what="RELOADING=1",
    )
    at = notify_path.received().index(reloading[0])
    wait_until(lambda: "READY=1" in notify_path.received()[at:], what="READY=1 after the reload")

    sup.request("shutdown")
    assert sup.wait_exit() == 0
    ready_at = notify_path.received().index("READY=1\nSTATUS=running")
    assert notify_path.received().index("STOPPING=1") > ready_at
    said = [e["line"] for e in sup.events("worker_output") if e["bot"] == "gated"]
    assert "notify=none watchdog=none" in said


def test_abstract_notify_socket(sup: Supervisor) -> None:
    """NOTIFY_SOCKET="@name" is a socket in the abstract namespace."""
    name = f"sv-notify-test-{os.getpid()}-{sup.dir.name}"
    listener = NotifySocket("\0" + name)
    try:
        sup.configure('[bots.plain]\ncommand = ["sleep", "1000"]\nready_after_s = 0\n')
        sup.start(env={"NOTIFY_SOCKET": "@" + name})
        wait_until(lambda: listener.has("READY=1\nSTATUS=running"), what="READY=1")
        assert listener.count("WATCHDOG=1") == 0  # no WATCHDOG_USEC, no pings
    finally:
        listener.sock.close()
