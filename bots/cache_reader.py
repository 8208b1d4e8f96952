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
Without Redis it keeps working: every read is a load.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import random
import signal
import statistics
import time

from supervisor.worker import Worker


def zipf_cdf(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..n under Zipf(s), ending at 1.0."""
    weights = list(itertools.accumulate(1.0 / rank**s for rank in range(1, n + 1)))
    return [w / weights[-1] for w in weights]


def _env(name: str, default: str) -> float:
    return float(os.environ.get(name, default))


async def run() -> None:
    keys = int(_env("CACHE_KEYS", "1000"))
    rate = _env("CACHE_READS_PER_S", "50")
    ttl_s = _env("CACHE_TTL_S", "5")
    load_s = _env("CACHE_LOAD_MS", "5") / 1000
    prefix = os.environ.get("CACHE_PREFIX", "demo:")
    concurrency = asyncio.Semaphore(int(_env("CACHE_CONCURRENCY", "64")))
    cdf = zipf_cdf(keys, _env("CACHE_ZIPF_S", "1.0"))
    rng = random.Random()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async with Worker.connect() as w:
        cache = w.open_cache(xfetch_beta=_env("CACHE_XFETCH_BETA", "0"))
        latencies: list[float] = []
        tasks: set[asyncio.Task[None]] = set()

        async def load(rank: int) -> dict[str, object]:
            await asyncio.sleep(load_s)
            return {"rank": rank, "at": time.time()}

        async def read(rank: int) -> None:
            async with concurrency:
                started = time.perf_counter()
                await cache.get(f"{prefix}{rank}", lambda: load(rank), ttl_s=ttl_s)
                latencies.append((time.perf_counter() - started) * 1000)

        reported = {"cache_hits": 0, "cache_misses": 0, "cache_loads": 0}

        def report() -> None:
            stats = cache.stats
            for name, total in zip(reported, (stats.hits, stats.misses, stats.loads), strict=True):
                w.count(name, total - reported[name])
                reported[name] = total
            if latencies:
                w.gauge("cache_get_ms", statistics.median(latencies))
                latencies.clear()

        w.ready()
        period = 1.0 / rate
        next_at = time.monotonic()
        next_report = next_at + 1.0
        while not stop.is_set() and not w.draining:
            rank = bisect.bisect_left(cdf, rng.random()) + 1
            task = asyncio.create_task(read(min(rank, keys)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += period
            now = time.monotonic()
            if now >= next_report:
                report()
                next_report = now + 1.0
            if next_at > now:
                await asyncio.sleep(next_at - now)
            elif now - next_at > 1.0:
                next_at = now  # we fell behind by a second: do not burst to catch up
        await asyncio.gather(*tasks, return_exceptions=True)
        report()


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
