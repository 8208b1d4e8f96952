"""Autoscaling benchmark: reaction to a backlog spike, and draining a backlog three ways.

    python bench/scaling.py [--runs 3] [--jobs 600] [--job-s 0.02] [--plot bench/out/scaling.png]
    python bench/scaling.py --case cpu [--runs 3]

`--case cpu`: a CPU-bound bot (tests/bots/burn.py, min 1, max 4, target 20 %,
interval 500 ms) from its first worker's readiness to the first scale-up, with
today's CPU start-up rule (cpu_startup_s 2 s) and with the old one
(initial_readiness_delay_s 30 s); and a bot whose workers burn a core for 1 s
after readiness and then idle (tests/bots/burst.py): its peak desired count in
the 10 s after start, with the rule and with cpu_startup_s 0 (the storm).

`--case pacing [--workers 200] [--caps 50 20]`: a fleet of bench/workers/warm.py (each warms
up against the shared local Redis with its own connection, 50 round trips, and
50 ms of CPU, then is ready) started with no `max_starting` and with caps;
time from `supervisor run` to all ready, the peak of runnable processes
(/proc/stat procs_running) and the peak of Redis's connected_clients, sampled
every 50 ms.

A real supervisor runs bots/queue_worker.py against the local Redis. A backlog
of jobs is pushed at once; the bot either autoscales on the list's length
(min 1, max 8, target 25 jobs per worker), or stays at 1 worker, or at 8.
Printed, as medians over the runs:

- reaction: from the push to the desired count reaching max, and to all those
  workers being ready (the policy's interval and any cooldown are included;
  the configured ones are 250 ms and none);
- drain time of the whole backlog, and the worker-seconds spent (the integral
  of running workers) until the last job is done, and over the whole episode
  (HORIZON_S from the push: what the fleet costs, idle tail included).

It also writes a PNG of workers and backlog over time for one run of each mode.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from supervisor.cli import client
from supervisor.errors import UnreachableError

REPO = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"
MAX_WORKERS = 8
SAMPLE_S = 0.05
HORIZON_S = 20.0


@dataclass
class Run:
    mode: str
    t: list[float] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    reaction_desired_s: float | None = None
    reaction_ready_s: float | None = None
    drain_s: float | None = None
    worker_s: float = 0.0  # until drained
    episode_worker_s: float = 0.0  # over HORIZON_S


def config(mode: str, run_dir: Path, key: str, done_key: str, job_s: float) -> str:
    workers = {"auto": 1, "min": 1, "max": MAX_WORKERS}[mode]
    text = f"""
[supervisor]
run_dir = "{run_dir}"
log_level = "warning"

[bots.q]
module = "bots.queue_worker:main"
cwd = "{REPO}"
workers = {workers}
readiness = "sdk"
stop_timeout_s = "2s"

[bots.q.env]
QUEUE_REDIS_URL = "{REDIS_URL}"
QUEUE_KEY = "{key}"
QUEUE_DONE_KEY = "{done_key}"
QUEUE_JOB_S = "{job_s}"
QUEUE_POLL_S = "0.2"
"""
    if mode == "auto":
        text += f"""
[bots.q.scale]
min = 1
max = {MAX_WORKERS}
metric = "redis_list"
key = "{key}"
url = "{REDIS_URL}"
target = 25
interval_s = "250ms"
scale_down_window_s = "5s"
initial_readiness_delay_s = "0s"
up_limit = {{ workers = {MAX_WORKERS}, period_s = "1s" }}
"""
    return text


def measure(mode: str, jobs: int, job_s: float) -> Run:
    r = redis.Redis.from_url(REDIS_URL)
    key, done_key = f"bench:jobs:{uuid.uuid4().hex}", f"bench:done:{uuid.uuid4().hex}"
    work = Path(tempfile.mkdtemp(prefix="bs-", dir="/tmp"))
    conf = work / "supervisor.toml"
    conf.write_text(config(mode, work / "run", key, done_key, job_s))
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "run", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "log", "wb"),  # noqa: SIM115
    )
    run = Run(mode)
    try:
        start_count = 1 if mode != "max" else MAX_WORKERS
        _wait(lambda: _bot(work)["ready"] == start_count, 30)
        t0 = time.perf_counter()
        pipe = r.pipeline()
        for i in range(jobs):
            pipe.lpush(key, f"job-{i}")
        pipe.execute()
        deadline = t0 + 120 + HORIZON_S
        settled_at: float | None = None
        while time.perf_counter() < deadline:
            bot = _bot(work)
            now = time.perf_counter() - t0
            run.t.append(now)
            run.backlog.append(int(r.llen(key)))
            run.desired.append(bot["desired"])
            run.ready.append(bot["ready"])
            run.running.append(bot["running"])
            if run.reaction_desired_s is None and bot["desired"] == MAX_WORKERS:
                run.reaction_desired_s = now
            if run.reaction_ready_s is None and bot["ready"] == MAX_WORKERS:
                run.reaction_ready_s = now
            if run.drain_s is None and r.llen(done_key) >= jobs:
                run.drain_s = now
                run.worker_s = _integral(run.t, run.running)
                settled_at = now
            if settled_at is not None and now >= HORIZON_S:
                run.episode_worker_s = _integral(run.t, run.running)
                break
            time.sleep(SAMPLE_S)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        r.delete(key, done_key)
        r.close()
        shutil.rmtree(work, ignore_errors=True)
    return run


def _bot(work: Path, name: str = "q") -> dict:  # type: ignore[type-arg]
    try:
        return client.request(work / "run", "status", {"bot": name}, 5.0)["bots"][name]
    except UnreachableError:
        return {"ready": -1, "desired": 0, "running": 0}


def _wait(predicate, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the supervisor did not come up")
        time.sleep(0.05)


def _integral(t: list[float], values: list[int]) -> float:
    return sum((t[i + 1] - t[i]) * values[i] for i in range(len(t) - 1))


def plot(runs: dict[str, Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.8 * len(runs)), sharex=True)
    for ax, (mode, run) in zip(axes, runs.items(), strict=True):
        ax.step(run.t, run.desired, where="post", label="desired workers", color="tab:blue")
        ax.step(run.t, run.ready, where="post", label="ready workers", color="tab:green")
        ax.set_ylabel("workers")
        ax.set_ylim(0, MAX_WORKERS + 1)
        ax2 = ax.twinx()
        ax2.plot(run.t, run.backlog, label="backlog (jobs)", color="tab:red", alpha=0.7)
        ax2.set_ylabel("backlog")
        drained = f"drained in {run.drain_s:.1f} s" if run.drain_s else "not drained"
        ax.set_title(f"{mode}: {drained}, {run.worker_s:.1f} worker-seconds")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper right", fontsize=8)
    axes[-1].set_xlabel("seconds since the backlog was pushed")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


CPU_BOT = """
[supervisor]
run_dir = "{run_dir}"
log_level = "warning"

[bots.q]
module = "tests.bots.{module}:main"
cwd = "{repo}"
stop_timeout_s = "1s"
env = {{ BURST_S = "1" }}

[bots.q.scale]
min = 1
max = 4
metric = "cpu"
target = 20
interval_s = "500ms"
{rule}
"""
OLD_RULE = 'initial_readiness_delay_s = "30s"\ncpu_startup_s = "0s"'


@contextlib.contextmanager
def fleet(text: str) -> Iterator[Path]:
    """A real `supervisor run` of this config (with {run_dir} and {repo} filled in)."""
    work = Path(tempfile.mkdtemp(prefix="bs-", dir="/tmp"))
    conf = work / "supervisor.toml"
    conf.write_text(text.format(run_dir=work / "run", repo=REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "run", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "log", "wb"),  # noqa: SIM115
    )
    try:
        yield work
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def cpu_reaction(rule: str) -> float:
    """Seconds from the first worker's readiness to the first scale-up."""
    with fleet(CPU_BOT.replace("{rule}", rule).replace("{module}", "burn")) as work:
        _wait(lambda: _bot(work)["ready"] >= 1, 60)
        t0 = time.perf_counter()
        _wait(lambda: _bot(work)["desired"] >= 2, 120)
        return time.perf_counter() - t0


def burst_peak(rule: str, horizon_s: float = 10.0) -> int:
    """The highest desired count within horizon_s of the first worker's readiness."""
    with fleet(CPU_BOT.replace("{rule}", rule).replace("{module}", "burst")) as work:
        _wait(lambda: _bot(work)["ready"] >= 1, 60)
        peak, end = 1, time.perf_counter() + horizon_s
        while time.perf_counter() < end:
            peak = max(peak, _bot(work)["desired"])
            time.sleep(SAMPLE_S)
        return peak


def cpu_case(runs: int) -> None:
    print(f"CPU autoscaling, {runs} runs, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    new = [cpu_reaction("") for _ in range(runs)]
    old = [cpu_reaction(OLD_RULE) for _ in range(runs)]
    print("\nCPU-bound bot, first worker ready -> first scale-up (median)")
    print(f"  cpu_startup_s 2 s (default)          {statistics.median(new):6.2f} s")
    print(f"  initial_readiness_delay_s 30 s (old) {statistics.median(old):6.2f} s")
    calm = [burst_peak("") for _ in range(runs)]
    storm = [burst_peak('cpu_startup_s = "0s"') for _ in range(runs)]
    print("\n1 s start-up burst then idle, peak desired in 10 s (median; min 1, max 4)")
    print(f"  cpu_startup_s 2 s (default)          {statistics.median(calm):6g}")
    print(f"  cpu_startup_s 0 s                    {statistics.median(storm):6g}")


PACED_FLEET = """
[supervisor]
run_dir = "{run_dir}"
log_level = "warning"
{cap}

[bots.w]
module = "bench.workers.warm:main"
cwd = "{repo}"
workers = {workers}
readiness = "sdk"
stop_timeout_s = "2s"
"""


PACED_TIMEOUT_S = 300.0


@dataclass
class Paced:
    all_ready_s: float  # inf: not all ready within PACED_TIMEOUT_S
    peak_running: int
    peak_clients: int
    restarts: int  # workers killed for not getting ready in time (ready_timeout_s), and so on


def paced_start(cap: int | None, workers: int) -> Paced:
    r = redis.Redis.from_url(REDIS_URL)
    base = int(r.info("clients")["connected_clients"])
    text = PACED_FLEET.replace("{cap}", f"max_starting = {cap}" if cap else "")
    t0 = time.perf_counter()
    with fleet(text.replace("{workers}", str(workers))) as work:
        peak_running = peak_clients = 0
        done = math.inf
        while time.perf_counter() - t0 < PACED_TIMEOUT_S:
            bot = _bot(work, "w")
            if bot["ready"] >= workers:
                done = time.perf_counter() - t0
                break
            peak_running = max(peak_running, _procs_running())
            clients = int(r.info("clients")["connected_clients"]) - base
            peak_clients = max(peak_clients, clients)
            time.sleep(SAMPLE_S)
        restarts = int(_bot(work, "w").get("restarts", 0))
    r.close()
    return Paced(done, peak_running, peak_clients, restarts)


def _procs_running() -> int:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("procs_running"):
                return int(line.split()[1])
    return 0


def pacing_case(runs: int, workers: int, caps: list[int]) -> None:
    print(f"start-up pacing, {workers} workers, {runs} runs, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("\nmax_starting   all ready   peak runnable   peak Redis clients   restarts (medians)")
    for cap in [None, *caps]:
        results = [paced_start(cap, workers) for _ in range(runs)]
        ready = statistics.median(p.all_ready_s for p in results)
        running = statistics.median(p.peak_running for p in results)
        clients = statistics.median(p.peak_clients for p in results)
        restarts = statistics.median(p.restarts for p in results)
        print(
            f"  {cap or 'none':<12} {ready:8.2f} s   {running:13g}   {clients:18g}   {restarts:8g}"
        )
    print(f"load at the end {os.getloadavg()[0]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--job-s", type=float, default=0.02)
    parser.add_argument("--plot", type=Path, default=REPO / "bench" / "out" / "scaling.png")
    parser.add_argument("--case", choices=("backlog", "cpu", "pacing"), default="backlog")
    parser.add_argument("--workers", type=int, default=200, help="pacing: the fleet's size")
    parser.add_argument("--caps", type=int, nargs="*", default=[50, 20], help="pacing: caps")
    args = parser.parse_args()
    if args.case == "cpu":
        cpu_case(args.runs)
        return 0
    if args.case == "pacing":
        pacing_case(args.runs, args.workers, args.caps)
        return 0
    print(f"scaling benchmark: {args.jobs} jobs of {args.job_s * 1000:g} ms, {args.runs} runs, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    results: dict[str, list[Run]] = {}
    for mode in ("auto", "min", "max"):
        results[mode] = [measure(mode, args.jobs, args.job_s) for _ in range(args.runs)]

    def med(values: list[float | None]) -> str:
        present = [v for v in values if v is not None]
        return f"{statistics.median(present):.2f} s" if present else "n/a"

    auto = results["auto"]
    print("\nreaction to the spike (autoscaled, 1 -> 8 workers)")
    print(
        f"  desired count reaches {MAX_WORKERS}       {med([r.reaction_desired_s for r in auto])}"
    )
    print(f"  all {MAX_WORKERS} workers ready          {med([r.reaction_ready_s for r in auto])}")
    head = f"worker-s in {HORIZON_S:g} s"
    print(f"\ndraining the backlog        drain time   worker-s to drain   {head}")
    for mode, label in (("auto", "autoscaled 1..8"), ("min", "fixed at 1"), ("max", "fixed at 8")):
        runs = results[mode]
        worker_s = statistics.median(r.worker_s for r in runs)
        episode = statistics.median(r.episode_worker_s for r in runs)
        drain = med([r.drain_s for r in runs])
        print(f"  {label:<24} {drain:>10}   {worker_s:17.1f}   {episode:16.1f}")
    plot({mode: results[mode][0] for mode in results}, args.plot)
    print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
