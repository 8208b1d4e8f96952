"""echo: an asyncio bot on the SDK. It says it is alive now and then, and
reports a gauge and a counter, so `supervisor status` has something to show.

Run by the supervisor as `module = "bots.echo:main"`; standalone,
`python -m bots.echo` works too (the SDK does nothing then).
"""

from __future__ import annotations

import asyncio
import os

from supervisor.worker import Worker


async def main() -> None:
    slot = os.environ.get("SUPERVISOR_WORKER", "-")
    async with Worker.connect() as w:
        w.ready()
        print(f"echo worker {slot} up (pid {os.getpid()})")
        beats = 0
        while not w.draining:
            await asyncio.sleep(1.0)
            beats += 1
            w.count("beats")
            w.gauge("uptime_s", beats)
            if beats % 5 == 0:
                print(f"echo worker {slot}: still here after {beats}s")
    print(f"echo worker {slot}: drained, stopping cleanly")


if __name__ == "__main__":
    asyncio.run(main())
