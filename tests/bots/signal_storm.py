"""A loop held busy while signals pile up, as 2,000 stops in one pass hold the supervisor's.

    python signal_storm.py ours|asyncio GO_FILE

Prints "busy" once it holds the loop, "full" when its wake-up socket is full (every signal
after that has no byte of its own), "free" when GO_FILE appears and it lets the loop run,
then "terminated" when its SIGTERM handler runs. With "asyncio" (loop.add_signal_handler)
the SIGTERM sent after "full" is lost, and CPython prints "Exception ignored when trying to
write to the signal wakeup fd" for every signal; with "ours" (daemon/signals.py) it is not.
"""

from __future__ import annotations

import asyncio
import select
import signal
import socket
import sys
from pathlib import Path

from supervisor.daemon.signals import Signals


def _full(sock: socket.socket) -> bool:
    """Full, without filling it ourselves: probed only once the kernel calls it unwritable
    (over half full: signals' bytes, not ours, took it there)."""
    if select.select([], [sock], [], 0)[1]:
        return False
    try:
        sock.send(b"\0")
    except BlockingIOError:
        return True
    return False


def _hold(go: Path, wake: socket.socket) -> None:
    """Holds the loop, as a long pass of it would: nothing reads the wake-up socket."""
    print("busy", flush=True)
    full = False
    while not go.exists():
        if not full and _full(wake):
            full = True
            print("full", flush=True)


async def main(mode: str, go: Path) -> None:
    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()
    usr1 = [0]

    def on_usr1() -> None:
        usr1[0] += 1

    if mode == "ours":
        signals = Signals(loop)
        signals.add(signal.SIGUSR1, on_usr1)
        signals.add(signal.SIGTERM, terminated.set)
        wake = signals._wake_w  # only to see that it filled
    else:
        loop.add_signal_handler(signal.SIGUSR1, on_usr1)
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
        wake = loop._csock  # type: ignore[attr-defined]
    _hold(go, wake)
    print("free", flush=True)
    await asyncio.wait_for(terminated.wait(), timeout=60)
    print(f"terminated usr1={usr1[0]}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
