"""Cache benchmark: no warmer, XFetch and the warmer, on the same workload, side by side.

    python bench/cache.py [--workers 4] [--rate 300] [--keys 100000] [--ttl 4]
                          [--warmup 10] [--seconds 20] [--runs 3]

Workers of bots/cache_reader.py read Zipf(1)-distributed keys out of
100,000 through `worker.cache`, with a TTL of a few seconds; a miss calls
a loader that waits 5 ms (as a database query would). Each way runs in a
fresh supervisor against a private redis-server, so no run sees another's
keys:

    no warmer        a plain read-through cache
    XFetch           each reader recomputes early with a probability that rises
                     as the TTL ends (Vattani et al., VLDB 2015; beta = 1)
    warmer           the cache_warmer plugin at its default min_reads = 1: a key
                     is warmed only if it should be read at least once more in
                     its next TTL, so a warm costs no more than the miss it saves
    warmer (frugal)  min_reads = 3: only keys read often, for loads close to XFetch's
    warmer (eager)   min_reads = 0.1: warms colder keys too, for more hits at
                     the price of more loads

The warmer runs with top_k = 5000, max_warms_per_s = 2000 and a refresh
300 ms before expiry.

For each it prints the hit rate (an XFetch early recompute counts as a
hit: the value was there), loader calls per second (the database's load:
misses, early recomputes and warms) and p50/p99 `get` latency, the median
of --runs runs, counted after --warmup seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import percentile
from supervisor.cli import client

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Way:
    name: str
    xfetch_beta: float = 0.0
    warmer: dict[str, str] | None = None


WAYS = [
    Way("no warmer"),
    Way("XFetch (beta 1)", xfetch_beta=1.0),
    Way("warmer", warmer={"min_reads": "1"}),
    Way("warmer (frugal)", warmer={"min_reads": "3"}),
    Way("warmer (eager)", warmer={"min_reads": "0.1"}),
]


@dataclass
class Result:
    hit_rate: float
    loads_per_s: float
    p50_ms: float
    p99_ms: float
    warms_per_s: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(way: Way, args: argparse.Namespace, url: str, stats: Path) -> str:
    env = {
        "CACHE_KEYS": args.keys,
        "CACHE_READS_PER_S": args.rate,
        "CACHE_TTL_S": args.ttl,
        "CACHE_LOAD_MS": 5,
        "CACHE_XFETCH_BETA": way.xfetch_beta,
        "CACHE_STATS_DIR": stats,
        "CACHE_WARMUP_S": args.warmup,
        "SUPERVISOR_CACHE_URL": url,
        "CACHE_PREFIX": "bench:",
    }
    text = f"""
[supervisor]
run_dir = "run"
log_format = "json"
log_level = "warning"

[bots.reader]
module = "bots.cache_reader:main"
cwd = "{REPO}"
workers = {args.workers}
stop_timeout_s = "5s"
env = {{ {", ".join(f'{k} = "{v}"' for k, v in env.items())} }}
"""
    if way.warmer is not None:
        settings = {
            "redis_url": f'"{url}"',
            "top_k": "5000",
            "max_warms_per_s": "2000",
            "refresh_before_expiry": '"300ms"',
        } | way.warmer
        text += "\n[plugins.cache_warmer]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
    return text


def run_once(way: Way, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        base = Path(tmp)
        port = free_port()
        server = shutil.which("redis-server")
        if server is None:
            sys.exit("redis-server is not installed")
        redis_proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        stats = base / "stats"
        stats.mkdir()
        (base / "supervisor.toml").write_text(
            config(way, args, f"redis://127.0.0.1:{port}/0", stats)
        )
        log = (base / "supervisor.log").open("wb")
        sup = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "-c", "supervisor.toml"],
            cwd=base,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(args.warmup + args.seconds + 1.5)  # start-up, warm-up, the window
            if way.warmer is not None:
                status = client.request(base / "run", "status", {}, 10)["plugins"]["cache_warmer"]
                if args.verbose:
                    print("   ", {k: status[k] for k in ("warms", "keys_tracked", "hit_rate")})
            client.request(base / "run", "shutdown", {}, 30)
            sup.wait(timeout=60)
        finally:
            if sup.poll() is None:
                sup.kill()
            redis_proc.kill()
            redis_proc.wait()
            log.close()
        return summarise(stats, args)


def summarise(stats: Path, args: argparse.Namespace) -> Result:
    files = [json.loads(p.read_text()) for p in stats.glob("*.json")]
    if len(files) != args.workers:
        sys.exit(f"expected {args.workers} stats files, found {len(files)}")
    hits = sum(f["hits"] for f in files)
    misses = sum(f["misses"] for f in files)
    loads = sum(f["loads"] for f in files)
    latencies = [x for f in files for x in f["latencies_ms"]]
    window = statistics.mean(f["seconds"] for f in files)  # from warm-up to the worker's stop
    return Result(
        hit_rate=hits / max(1, hits + misses),
        loads_per_s=loads / window,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        warms_per_s=sum(f["warms"] for f in files) / window,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=300, help="reads/s per worker")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--ttl", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only the ways with these names")
    parser.add_argument("--verbose", action="store_true", help="print the warmer's status too")
    args = parser.parse_args()
    ways = [w for w in WAYS if not args.only or w.name in args.only]
    print(
        f"{args.workers} workers x {args.rate:g} reads/s, Zipf(1) over {args.keys:,} keys, "
        f"TTL {args.ttl:g}s, 5 ms loader; median of {args.runs} runs of {args.seconds:g}s "
        f"after {args.warmup:g}s warm-up"
    )
    results: dict[str, list[Result]] = {w.name: [] for w in ways}
    for run in range(args.runs):
        for way in ways:  # interleaved, so a noisy minute hurts every way alike
            r = run_once(way, args)
            results[way.name].append(r)
            print(
                f"  run {run + 1} {way.name:<16} hit {r.hit_rate:6.1%}"
                f"  loads/s {r.loads_per_s:7.1f}  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms",
                flush=True,
            )
    print()
    print(
        f"{'':<18}{'hit rate':>9}{'loader calls/s':>16}{'of which warms':>16}"
        f"{'get p50':>10}{'get p99':>10}"
    )
    for name, rs in results.items():
        med = statistics.median
        print(
            f"{name:<18}{med(r.hit_rate for r in rs):>9.1%}"
            f"{med(r.loads_per_s for r in rs):>16.1f}{med(r.warms_per_s for r in rs):>16.1f}"
            f"{med(r.p50_ms for r in rs):>8.2f}ms{med(r.p99_ms for r in rs):>8.2f}ms"
        )


if __name__ == "__main__":
    main()
