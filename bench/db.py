"""DB tuning benchmark: a DB-bound fleet under a tight budget, tuned vs a static equal split.

    python bench/db.py [--runs 3] [--budget 16] [--warmup-s 5] [--measure-s 15] [--job-s 0.02]

A real supervisor runs two bots of bots/db_worker.py against the local PostgreSQL, with
the db_tuning plugin and a fleet budget of --budget connections:

- heavy: 2 workers, 12 jobs in flight each (it could use 24 connections);
- light: 4 workers, 1 job in flight each (plus its backlog query now and then).

Each job is --job-s of pg_sleep inside a transaction, so throughput is bounded by the
connections a bot holds. Mode "static" (tuning = false) splits the budget equally over the
6 workers; mode "tuned" (tuning = true) moves it to the workers that wait. After a warm-up
(in which tuning converges), the jobs done in --measure-s are counted per bot from the
table, and every worker records how long each job waited for a pooled connection. A
sampler counts the fleet's backends in pg_stat_activity every 50 ms throughout.

Printed, as medians over the runs: queries (jobs) per second, per bot and in total; p95
pool wait per bot and over all jobs; and the most connections the fleet held at once.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from psycopg import sql

from bench.harness import percentile
from bots.db_worker import ensure_table
from supervisor.cli import client
from supervisor.errors import UnreachableError

REPO = Path(__file__).resolve().parents[1]
DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
BOTS = {"heavy": (2, 12), "light": (4, 1)}  # name: (workers, jobs in flight per worker)
JOBS_PER_BOT = 200_000


@dataclass
class Run:
    qps: dict[str, float]
    p95_ms: dict[str, float]
    most_connections: int


def config(mode: str, table: str, app: str, budget: int, job_s: float, *, stats: Path) -> str:
    bots = ""
    for name, (workers, inflight) in BOTS.items():
        env = {
            "PYTHONPATH": str(REPO),
            "DB_TABLE": table,
            "DB_CONCURRENCY": str(inflight),
            "DB_WORK_S": str(job_s),
            "DB_STATS_FILE": str(stats),
            "DB_STATS_FROM": "{stats_from}",
        }
        table_env = ", ".join(f'{k} = "{v}"' for k, v in env.items())
        bots += f'[bots.{name}]\nmodule = "bots.db_worker:main"\nworkers = {workers}\n'
        bots += f"env = {{ {table_env} }}\n\n"
    return (
        '[supervisor]\nrun_dir = "run"\nlog_format = "json"\n\n'
        + bots
        + f'[plugins.db_tuning]\ndsn = "{DSN}"\nenvironment = "prod"\nreserve = 0\n'
        f"max_fleet_connections = {budget}\nmax_size = {budget}\n"
        f'application_name = "{app}"\ninterval_s = "0.5s"\n'
        f"tuning = {'true' if mode == 'tuned' else 'false'}\n"
    )


def measure(mode: str, budget: int, warmup_s: float, measure_s: float, job_s: float) -> Run:
    tag = secrets.token_hex(3)
    table, app = f"bench_jobs_{tag}", f"bench{tag}"
    work = Path(tempfile.mkdtemp(prefix="bench-db-", dir="/tmp"))
    stats = work / "stats.jsonl"
    conn = psycopg.connect(DSN, autocommit=True)
    ensure_table(conn, table)
    for name in BOTS:
        conn.execute(
            sql.SQL("insert into {} (queue) select %s from generate_series(1, %s)").format(
                sql.Identifier(table)
            ),
            [name, JOBS_PER_BOT],
        )
    conn.execute(sql.SQL("analyze {}").format(sql.Identifier(table)))
    stats_from = time.time() + 3600  # set for real once the fleet runs
    text = config(mode, table, app, budget, job_s, stats=stats)
    sampler = Sampler(app)
    proc = None
    try:
        started = time.time()
        stats_from = started + warmup_s + 2.0  # start-up takes about 2 s here
        (work / "supervisor.toml").write_text(text.replace("{stats_from}", f"{stats_from}"))
        log = open(work / "supervisor.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "-c", "supervisor.toml"],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler.start()
        _wait_answering(work / "run")
        time.sleep(max(0.0, stats_from - time.time()))
        before = _done(conn, table)
        time.sleep(measure_s)
        after = _done(conn, table)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        sampler.stop()
        conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(table)))
        conn.close()
    waits: dict[str, list[float]] = {name: [] for name in BOTS}
    for line in stats.read_text().splitlines():
        record = json.loads(line)
        waits[record["queue"]] += record["waits_ms"]
    waits["all"] = [w for name in BOTS for w in waits[name]]
    qps = {name: (after[name] - before[name]) / measure_s for name in BOTS}
    qps["all"] = sum(qps.values())
    p95 = {name: percentile(values, 0.95) if values else 0.0 for name, values in waits.items()}
    return Run(qps, p95, max(sampler.samples, default=0))


def _done(conn: psycopg.Connection[tuple[str, int]], table: str) -> dict[str, int]:
    rows = conn.execute(
        sql.SQL("select queue, count(*) from {} where done group by queue").format(
            sql.Identifier(table)
        )
    ).fetchall()
    return {name: 0 for name in BOTS} | {q: int(n) for q, n in rows}


def _wait_answering(run_dir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.request(run_dir, "ping", {}, 1.0)
            return
        except (UnreachableError, OSError, TimeoutError):
            time.sleep(0.05)
    raise TimeoutError("the supervisor did not answer")


# Parallel query workers carry their leader's application_name, but they are not
# connections (they come out of max_worker_processes, not max_connections).
_FLEET_SQL = (
    "select count(*) from pg_stat_activity "
    "where backend_type = 'client backend' and left(application_name, %s) = %s"
)


class Sampler:
    """The fleet's connections in pg_stat_activity, every 50 ms."""

    def __init__(self, app: str) -> None:
        self.prefix = app + ":"
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with psycopg.connect(DSN, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                row = conn.execute(_FLEET_SQL, [len(self.prefix), self.prefix]).fetchone()
                self.samples.append(int(row[0]) if row else 0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--measure-s", type=float, default=15.0)
    parser.add_argument("--job-s", type=float, default=0.02)
    args = parser.parse_args()
    shape = ", ".join(f"{n}: {w} workers x {c} in flight" for n, (w, c) in BOTS.items())
    print(
        f"db benchmark: budget {args.budget} connections; {shape}; jobs of "
        f"{args.job_s * 1000:g} ms; {args.runs} runs per mode; {os.cpu_count()} CPUs"
    )
    results: dict[str, list[Run]] = {"static": [], "tuned": []}
    for _ in range(args.runs):
        for mode, runs in results.items():  # alternate: drift on the machine hits both alike
            runs.append(measure(mode, args.budget, args.warmup_s, args.measure_s, args.job_s))
    print(f"\n{'':24}{'static equal split':>20}{'tuned':>12}")
    for key, label in (("all", "all"), ("heavy", "heavy"), ("light", "light")):
        row = [statistics.median(r.qps[key] for r in results[m]) for m in results]
        print(f"  queries/s {label:<13}{row[0]:>20.0f}{row[1]:>12.0f}")
    for key, label in (("all", "all"), ("heavy", "heavy"), ("light", "light")):
        row = [statistics.median(r.p95_ms[key] for r in results[m]) for m in results]
        print(f"  p95 pool wait {label:<9}{row[0]:>17.1f} ms{row[1]:>9.1f} ms")
    most = [max(r.most_connections for r in results[m]) for m in results]
    print(f"  most fleet connections{most[0]:>18}{most[1]:>12}   (budget {args.budget})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
