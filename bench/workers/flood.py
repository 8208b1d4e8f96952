"""A bench bot that floods the supervisor with metrics through the SDK, on request.

Run as a module bot (`module = "bench.workers.flood:main"`). It says READY and
waits; on SIGUSR1 it reads the file named by $BENCH_FLOOD_CMD, three words:

    MODE COUNT RUN     e.g. "batched 500000 3" or "single 20000 4"

and sends COUNT counter increments `w.count("sent")`, each one a message:

- batched: in a tight loop, the SDK's normal behaviour (a frame of 256 messages
  goes out whenever 256 are waiting); the loop yields to the event loop every
  few thousand messages so the SDK's heartbeats still run.
- single: one message per frame, `w.flush()` after each. A flush that finds
  libzmq's queue full keeps its frame; the bot waits and retries it before the
  next message, so every frame really holds one message.

Then it sends the gauge "run" = RUN (after the counts, on the same socket, so
once the supervisor shows it every count of that flood has been counted or
lost) and waits for the next signal.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from supervisor.worker import Worker

_YIELD_EVERY = 4096  # batched: messages between yields to the event loop
_RETRY_S = 0.0005  # a full queue: wait this long before flushing again


async def _flush(w: Any) -> None:
    # libzmq's queue is full: retry now and then (nothing signals room), as the SDK does.
    while not w.flush():  # noqa: ASYNC110
        await asyncio.sleep(_RETRY_S)


async def main() -> None:
    cmd_path = os.environ["BENCH_FLOOD_CMD"]
    go = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
    async with Worker.connect() as w:
        w.ready()
        while True:
            await go.wait()
            go.clear()
            with open(cmd_path) as f:  # noqa: ASYNC230  (a few bytes, between floods)
                mode, count_text, run_text = f.read().split()
            count = int(count_text)
            if mode == "batched":
                for i in range(count):
                    w.count("sent")
                    if i % _YIELD_EVERY == _YIELD_EVERY - 1:
                        await asyncio.sleep(0)
            else:
                for _ in range(count):
                    w.count("sent")
                    await _flush(w)
            w.gauge("run", int(run_text))
            await _flush(w)
