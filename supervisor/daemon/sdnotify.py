"""systemd's notify protocol, spoken directly: READY, WATCHDOG, STOPPING and STATUS.

    NOTIFY_SOCKET=/run/systemd/notify      a unix datagram socket ("@name": abstract namespace)
    WATCHDOG_USEC=30000000 [WATCHDOG_PID]  the service's WatchdogSec, in microseconds

Each message is one datagram of newline-separated `KEY=VALUE` lines. Under
`Type=notify` the supervisor sends `READY=1` once no bot is starting any
more, `WATCHDOG=1` at half the watchdog interval from a task in its loop
(so a loop that hangs stops the pings and systemd restarts the service),
`STATUS=...` as the fleet comes up, `RELOADING=1` and `READY=1` around a
reload, and `STOPPING=1` when shutdown begins.
The variables are taken out of our environment, so workers do not inherit
them. A send that fails is logged and ignored: systemd's absence is no
reason to stop a fleet.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, MutableMapping

import anyio
import structlog

log = structlog.get_logger("supervisor.sdnotify")

_READY_POLL_S = 0.05


class Notifier:
    """Sends to systemd's notify socket; every method does nothing when there is none."""

    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s  # how often systemd wants a ping (half its interval)
        self._sock: socket.socket | None = None
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> Notifier:
        """The notifier systemd asked for; the variables leave `environ` (workers inherit it)."""
        raw = environ.pop("NOTIFY_SOCKET", None)
        usec = environ.pop("WATCHDOG_USEC", None)
        pid = environ.pop("WATCHDOG_PID", None)
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("notify_socket_unsupported", notify_socket=raw)
        return cls(address, watchdog_interval_s(usec, pid, os.getpid()))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """Send one message of KEY=VALUE fields; False if it did not go out."""
        if self._sock is None or self.address is None:
            return False
        message = "\n".join(fields)
        try:
            self._sock.sendto(message.encode(), socket.MSG_DONTWAIT, self.address)
        except OSError as e:
            log.warning("notify_failed", message=message, error=str(e))
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def reloading() -> tuple[str, str]:
    """RELOADING=1 with the clock that Type=notify-reload wants beside it."""
    return "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def socket_address(value: str) -> str | None:
    """NOTIFY_SOCKET as a socket address: a path, or "@name" for the abstract namespace."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None  # vsock:... and others are not spoken here


def watchdog_interval_s(usec: str | None, pid: str | None, our_pid: int) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None if the watchdog is not ours."""
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(our_pid):
        return None
    return int(usec) / 2e6


async def serve(notifier: Notifier, starting: Callable[[], list[str]]) -> None:
    """Ping the watchdog for as long as this runs; READY=1 once `starting()` is empty."""
    if not notifier.enabled:
        return
    async with anyio.create_task_group() as tg:
        if notifier.watchdog_s:
            tg.start_soon(_ping, notifier, notifier.watchdog_s)
        await _announce_ready(notifier, starting)


async def _announce_ready(notifier: Notifier, starting: Callable[[], list[str]]) -> None:
    said = ""
    while waiting := starting():
        status = "starting: " + ", ".join(waiting)
        if status != said:
            notifier.send(f"STATUS={status}")
            said = status
        await anyio.sleep(_READY_POLL_S)
    notifier.send("READY=1", "STATUS=running")


async def _ping(notifier: Notifier, every_s: float) -> None:
    while True:
        notifier.send("WATCHDOG=1")
        await anyio.sleep(every_s)
