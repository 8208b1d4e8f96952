"""ticker: a sync bot on the SDK. It prints the time once a second and calls
`w.beat()` in its loop, so a stuck loop would stop its heartbeats."""

from __future__ import annotations

import os
import time

from supervisor.worker import Worker


def main() -> int:
    slot = os.environ.get("SUPERVISOR_WORKER", "-")
    with Worker.connect_sync() as w:
        w.ready()
        ticks = 0
        while not w.draining:
            print(f"ticker {slot}: {time.strftime('%H:%M:%S')}")
            ticks += 1
            w.gauge("ticks", ticks)
            for _ in range(10):  # beat often: heartbeats come from this loop only
                time.sleep(0.1)
                w.beat()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
