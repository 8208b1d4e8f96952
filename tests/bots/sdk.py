"""Test bots that use the SDK; what each does is chosen by $SDK_MODE."""

from __future__ import annotations

import asyncio
import os
import time

from supervisor.worker import Worker


async def main() -> None:
    mode = os.environ.get("SDK_MODE", "idle")
    await asyncio.sleep(float(os.environ.get("SDK_HELLO_AFTER_S", "0")))  # a slow start
    async with Worker.connect() as w:
        if mode == "never_ready":
            await asyncio.sleep(3600)
        w.ready()
        if mode == "metrics":
            for _ in range(int(os.environ["SDK_COUNT"])):
                w.count("sent")
            w.gauge("done", 1)
            w.flush()
        elif mode == "block":
            await asyncio.sleep(float(os.environ.get("SDK_BLOCK_AFTER_S", "0.5")))
            time.sleep(3600)  # noqa: ASYNC251  (the point: the loop is stuck, heartbeats stop)
        elif mode == "config":
            async for control in w.control():
                if control.kind == "config":
                    w.gauge("colour_is_green", 1 if w.config.get("colour") == "green" else 0)
                    w.flush()
        elif mode == "drain":
            w.gauge("waiting_for_drain", 1)
            w.flush()
            async for control in w.control():
                if control.kind == "drain":
                    w.log("info", "draining")
                    return
        await asyncio.sleep(3600)


def sync_main() -> None:
    """Ticks (a gauge) until the supervisor asks it to drain, then ends."""
    with Worker.connect_sync() as w:
        w.ready()
        w.gauge("ticks", 0)
        ticks = 0
        while not w.draining:
            time.sleep(0.02)
            ticks += 1
            w.gauge("ticks", ticks)
            w.beat()
