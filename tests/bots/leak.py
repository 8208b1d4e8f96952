"""A test bot that leaks memory steadily (SDK, asyncio)."""

from __future__ import annotations

import asyncio
import os

from supervisor.worker import Worker


async def main() -> None:
    mb_per_s = float(os.environ.get("LEAK_MB_PER_S", "4"))
    hoard: list[bytes] = []
    async with Worker.connect() as w:
        w.ready()
        while True:
            await asyncio.sleep(0.1)
            hoard.append(os.urandom(int(mb_per_s * 1024 * 1024 / 10)))
            w.gauge("hoard_mb", len(hoard) * mb_per_s / 10)
