"""History store benchmark: what recording 200 workers at 1 Hz costs, how big the file gets
after a day and a month, and how long `analyze` takes over a month.

    python bench/history.py [--workers 200] [--ticks 300] [--runs 3] [--skip-month]

In one process, on the real code paths: each tick builds the monitor's points from a
synthetic `status` of the fleet (recorder.points, as the monitor does every interval_s) and
puts them on the real writer's queue; the writer thread writes them to a real SQLite file.
Ticks carry simulated timestamps one second apart, so an hour of history takes far less than
an hour; the CPU figures are CPU seconds per tick (= percent of a core at 1 Hz): the loop's
share (building the points) and the writer thread's (SQLite).

File sizes: the first hour is written through the writer; the rest of the day (1-minute
buckets) and of the month (10-minute buckets) is inserted directly, as the roll-up leaves it
(writing a month at 1 Hz through the writer would take days). The cap is off for this.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor.history import analysis, store
from supervisor.history.store import Retention
from supervisor.history.writer import Writer
from supervisor.plugins.monitor import recorder
from supervisor.policy import analyze

BOTS = 10
NO_CAP = Retention(max_mb=1e9)


def status(workers: int, tick: int) -> tuple[dict[str, Any], dict[int, dict[str, float]]]:
    """A fleet of `workers` split over BOTS bots, half autoscaled, with both plugins."""
    bots: dict[str, Any] = {}
    latest: dict[int, dict[str, float]] = {}
    per_bot = max(1, workers // BOTS)
    for b in range(BOTS):
        name = f"bot{b}"
        rows = []
        for w in range(per_bot):
            pid = 10_000 + b * 1000 + w
            latest[pid] = {"cpu_percent": 5.0 + w % 7, "rss_mb": 40.0 + w, "threads": 3.0,
                           "fds": 12.0}  # fmt: skip
            rows.append({"slot": w, "pid": pid, "ready": True, "restarts": 0,
                         "messages": tick * 20, "dropped": 0,
                         "metrics": {"jobs_done": tick * 5, "queue_depth": w % 4}})  # fmt: skip
        bot: dict[str, Any] = {"desired": per_bot, "running": per_bot, "ready": per_bot,
                               "restarts": 0, "workers": rows}  # fmt: skip
        if b % 2 == 0:
            bot["scale"] = {"min": 1, "max": per_bot, "metrics": [
                {"metric": "cpu", "value": 8.0, "ratio": 0.8, "target": 10}]}  # fmt: skip
        bots[name] = bot
    plugins = {
        "cache_warmer": {"hit_rate": {n: 0.9 for n in bots}, "keys_tracked": 100,
                         "reads": {n: {"hits": tick * 9, "misses": tick} for n in bots},
                         "warms": {"ok": tick, "failed": 0}},
        "db_tuning": {"budget": 90, "granted": 80, "fleet_connections": 60,
                      "bots": {n: {"granted": 8, "in_use": 3, "waiting": 0,
                                   "wait_p95_ms": 1.5, "idle_in_transaction": 0,
                                   "pool_errors": 0} for n in bots}},
    }  # fmt: skip
    header = {"pid": os.getpid(), "loop_lag_s": 0.002, "events_published": tick,
              "workers": {"messages": tick * 4000, "batches": tick * 20, "rejected": {}},
              "log_write_failures": 0}  # fmt: skip
    latest[os.getpid()] = {"cpu_percent": 3.0, "rss_mb": 80.0}
    return {"supervisor": header, "bots": bots, "plugins": plugins}, latest


def record(path: Path, workers: int, ticks: int, t0: float) -> tuple[float, float, int]:
    """(loop CPU s per tick, writer CPU s per tick, points per tick) over `ticks` ticks."""
    now = [t0]
    writer = Writer(path, NO_CAP, queue_size=100_000, clock=lambda: now[0])
    writer.start()
    host = {"load1": 1.0, "cpus": 2.0}
    loop_cpu = 0.0
    points = 0
    for tick in range(ticks):
        fleet, latest = status(workers, tick)
        started = time.thread_time()
        found = recorder.points(fleet, latest, host)
        writer.add_samples(now[0], found)
        loop_cpu += time.thread_time() - started
        points = len(found)
        now[0] += 1.0
    deadline = time.monotonic() + 600
    while writer.written < ticks * points and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.stop(timeout_s=60)
    assert writer.dropped == 0, f"{writer.dropped} batches dropped"
    return loop_cpu / ticks, writer.write_s / ticks, points


def age(path: Path, t0: float, hours: float, days: float) -> None:
    """Add what the roll-up would have left: 1-minute buckets back to `hours` before the
    first raw sample, and 10-minute buckets back to `days`."""
    conn = store.connect(path)
    ids = [r[0] for r in conn.execute("SELECT id FROM series")]

    def bulk(tier: int, width: int, start: float, end: float) -> None:
        first = int(start) // width * width
        rows = (
            (tier, ts, sid, 5.0, 1.0, 9.0, width)
            for ts in range(first, int(end), width)
            for sid in ids
        )
        conn.execute("BEGIN")
        conn.executemany("INSERT OR REPLACE INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")

    minute_from = t0 - hours * 3600
    bulk(1, 60, minute_from, t0)
    if days:
        bulk(2, 600, t0 - days * 86400, minute_from)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def analyze_time(path: Path, since_s: float, now: float) -> tuple[float, int]:
    started = time.perf_counter()
    conn = store.open_for_reading(path)
    h = analysis.load(conn, since_s, analyze.Facts(), None, now)
    found = analyze.analyze(h)
    conn.close()
    return time.perf_counter() - started, len(found)


def size_mb(path: Path) -> float:
    conn = store.connect(path)
    used = store.used_bytes(conn)
    conn.close()
    return used / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=300, help="ticks per CPU run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-month", action="store_true")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        loops, writes = [], []
        for run in range(args.runs):
            path = Path(tmp) / f"cpu{run}.sqlite3"
            loop_s, write_s, points = record(path, args.workers, args.ticks, 1.8e9)
            loops.append(loop_s)
            writes.append(write_s)
        print(f"{args.workers} workers, {points} points per tick (1 Hz):")
        print(f"  loop (building points)  {statistics.median(loops) * 100:6.2f}% of a core "
              f"(median of {args.runs} runs of {args.ticks} ticks)")  # fmt: skip
        print(f"  writer thread (SQLite)  {statistics.median(writes) * 100:6.2f}% of a core")
        hour = Path(tmp) / "hour.sqlite3"
        t0 = 1.8e9
        record(hour, args.workers, 3600, t0)
        print(f"  one hour raw: {size_mb(hour):.0f} MiB (bytes per hour of raw samples)")
        if args.skip_month:
            return
        age(hour, t0, hours=23, days=0)
        print(f"  after a day (1 h raw + 23 h of 1-minute buckets): {size_mb(hour):.0f} MiB")
        age(hour, t0, hours=23, days=30)
        print(f"  after a month (+ 29 days of 10-minute buckets): {size_mb(hour):.0f} MiB")
        now = t0 + 3600
        for since in (3600.0, 86400.0, 30 * 86400.0):
            times = [analyze_time(hour, since, now) for _ in range(args.runs)]
            wall = statistics.median(t for t, _ in times)
            print(f"  analyze --since {analyze._duration(since):>4}: {wall:6.2f} s wall "
                  f"(median of {args.runs})")  # fmt: skip


if __name__ == "__main__":
    main()
