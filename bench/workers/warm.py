"""A bench bot with a start-up like a real one: a warm-up against the shared Redis (its own
connection, WARM_COMMANDS round trips, then closed) and a little CPU, then ready and idle."""

from __future__ import annotations

import os
import time

import redis

from supervisor.worker import Worker


def main() -> None:
    with Worker.connect_sync() as w:
        r = redis.Redis.from_url(os.environ.get("WARM_REDIS_URL", "redis://127.0.0.1:6379/0"))
        for _ in range(int(os.environ.get("WARM_COMMANDS", "50"))):
            r.ping()
        r.close()
        end = time.process_time() + float(os.environ.get("WARM_CPU_S", "0.05"))
        while time.process_time() < end:
            pass
        w.ready()
        while not w.draining:
            time.sleep(0.1)
            w.beat()
