"""A test bot with a start-up burst: ready, then a whole core for BURST_S seconds, then idle."""

from __future__ import annotations

import os
import time

from supervisor.worker import Worker


def main() -> None:
    burst_s = float(os.environ.get("BURST_S", "1"))
    with Worker.connect_sync() as w:
        w.ready()
        end = time.monotonic() + burst_s
        while time.monotonic() < end and not w.draining:
            for _ in range(20_000):
                pass
            w.beat()
        while not w.draining:
            time.sleep(0.05)  # idle: the bot's real work would come from a queue
            w.beat()
