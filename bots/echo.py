"""echo: a plain Python bot that says it is alive every few seconds."""

from __future__ import annotations

import os
import signal
import sys
import time


def main() -> int:
    slot = os.environ.get("SUPERVISOR_WORKER", "-")
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    print(f"echo worker {slot} up (pid {os.getpid()})")
    beats = 0
    while not stopping:
        time.sleep(0.2)
        beats += 1
        if beats % 25 == 0:
            print(f"echo worker {slot}: still here after {beats // 5}s")
    print(f"echo worker {slot}: stopping cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
