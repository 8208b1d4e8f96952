"""A bot that reads a Zipf-distributed key set through `worker.cache`.

It stands for the usual bot that looks things up (users, prices, settings)
far more often than they change. Each read goes through the read-through
cache; a miss calls the loader, which here costs CACHE_LOAD_MS of waiting
(a database query would). The bot reports `cache_hits`, `cache_misses` and
`cache_loads` counters once a second, and `cache_get_ms` (that second's
median) as a gauge.

Settings (environment): CACHE_KEYS (1000), CACHE_ZIPF_S (1.0),
CACHE_READS_PER_S per worker (50), CACHE_TTL_S (5), CACHE_LOAD_MS (5),
CACHE_PREFIX ("demo:"), CACHE_XFETCH_BETA (0: off), CACHE_CONCURRENCY (64).
For benchmarks, CACHE_STATS_DIR makes each worker write its counts and
every `get` latency there as JSON when it stops, counting only what came
after CACHE_WARMUP_S seconds.
Without Redis it keeps working: every read is a load.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import os
import random
import signal
import statistics
import time
from pathlib import Path

from supervisor.worker import AsyncWorker, NullWorker, Worker


def zipf_cdf(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..n under Zipf(s), ending at 1.0."""
    weights = list(itertools.accumulate(1.0 / rank**s for rank in range(1, n + 1)))
    return [w / weights[-1] for w in weights]


def _env(name: str, default: str) -> float:
    return float(os.environ.get(name, default))


class Reader:
    def __init__(self, w: AsyncWorker | NullWorker) -> None:
        self.w = w
        self.keys = int(_env("CACHE_KEYS", "1000"))
        self.ttl_s = _env("CACHE_TTL_S", "5")
        self.load_s = _env("CACHE_LOAD_MS", "5") / 1000
        self.prefix = os.environ.get("CACHE_PREFIX", "demo:")
        self.cdf = zipf_cdf(self.keys, _env("CACHE_ZIPF_S", "1.0"))
        self.cache = w.open_cache(xfetch_beta=_env("CACHE_XFETCH_BETA", "0"))
        self.concurrency = asyncio.Semaphore(int(_env("CACHE_CONCURRENCY", "64")))
        self.latencies: list[float] = []  # this second's
        self.reported = {"cache_hits": 0, "cache_misses": 0, "cache_loads": 0}
        stats_dir = os.environ.get("CACHE_STATS_DIR")
        self.stats_path = Path(stats_dir) / f"{os.getpid()}.json" if stats_dir else None
        self.measure_from = time.monotonic() + _env("CACHE_WARMUP_S", "0")
        self.measured: list[float] = []
        self.base: dict[str, int] = {}
        self.base_at = 0.0

    async def load(self, rank: int) -> dict[str, object]:
        await asyncio.sleep(self.load_s)  # a database query would wait about this long
        return {"rank": rank, "at": time.time()}

    async def read(self, rank: int) -> None:
        async with self.concurrency:
            started = time.perf_counter()
            await self.cache.get(f"{self.prefix}{rank}", lambda: self.load(rank), self.ttl_s)
            self.latencies.append((time.perf_counter() - started) * 1000)

    def every_second(self, now: float) -> None:
        stats = self.cache.stats
        for name, total in zip(self.reported, (stats.hits, stats.misses, stats.loads), strict=True):
            self.w.count(name, total - self.reported[name])
            self.reported[name] = total
        if self.latencies:
            self.w.gauge("cache_get_ms", statistics.median(self.latencies))
        if self.stats_path is not None and now >= self.measure_from:
            if not self.base:
                self.base = stats.as_dict()
                self.base_at = now
            else:
                self.measured.extend(self.latencies)
        self.latencies.clear()

    def write_stats(self) -> None:
        if self.stats_path is not None and self.base:
            counts = {k: v - self.base[k] for k, v in self.cache.stats.as_dict().items()}
            window = {"seconds": time.monotonic() - self.base_at, "latencies_ms": self.measured}
            self.stats_path.write_text(json.dumps(counts | window))

    async def run(self, stop: asyncio.Event) -> None:
        rate = _env("CACHE_READS_PER_S", "50")
        rng = random.Random()
        tasks: set[asyncio.Task[None]] = set()
        next_at = time.monotonic()
        next_report = next_at + 1.0
        while not stop.is_set() and not self.w.draining:
            rank = min(bisect.bisect_left(self.cdf, rng.random()) + 1, self.keys)
            task = asyncio.create_task(self.read(rank))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += 1.0 / rate
            now = time.monotonic()
            if now >= next_report:
                self.every_second(now)
                next_report = now + 1.0
            if next_at > now:
                await asyncio.sleep(next_at - now)
            elif now - next_at > 1.0:
                next_at = now  # we fell behind by a second: do not burst to catch up
        await asyncio.gather(*tasks, return_exceptions=True)
        self.every_second(time.monotonic())


async def run() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker.connect() as w:
        reader = Reader(w)
        w.ready()
        await reader.run(stop)
        reader.write_stats()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
