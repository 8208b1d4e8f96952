"""A test bot that says how much work it holds: w.busy(1) in slot $BUSY_SLOT, 0 elsewhere."""

from __future__ import annotations

import os

from supervisor.worker import Worker


async def main() -> None:
    busy = os.environ["SUPERVISOR_WORKER"] == os.environ.get("BUSY_SLOT", "")
    async with Worker.connect() as w:
        w.ready()
        w.busy(1 if busy else 0)
        w.flush()
        async for control in w.control():
            if control.kind == "drain":
                return
