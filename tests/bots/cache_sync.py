"""A sync bot that reads a few keys through `worker.cache` and serves warms in `beat()`."""

from __future__ import annotations

import os
import signal
import time

from supervisor.worker import Worker


def main() -> None:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    prefix = os.environ.get("CACHE_PREFIX", "sync:")
    with Worker.connect_sync() as w:
        cache = w.open_cache(default_ttl_s=1.0)
        w.ready()
        n = 0
        while not stopping and not w.draining:
            key = f"{prefix}{n % 5}"
            cache.get(key, lambda: {"loaded_at": time.time()})
            n += 1
            w.beat()  # heartbeats, and the warms the supervisor asked for
            time.sleep(0.01)


if __name__ == "__main__":
    main()
