"""Lifecycle benchmark: start, replace, status, idle cost, scale, shutdown.

    python bench/lifecycle.py [--runs 3] [--tools supervisor,circus,supervisord] [--quick]

Prints each figure for every tool side by side, measured in the same run the
same way (see harness.py). Baselines are Circus and supervisord installed by
`bench/baselines/install.sh` into bench/.baselines; a missing one is skipped
with a note.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleets import FLEETS
from bench.harness import POLL_S, Fleet, median, percentile, running, wait_for

Row = dict[str, str]


def start_times(make: Callable[[], Fleet], n: int, kind: str, runs: int) -> str:
    """Launch to n workers spawned (and, for Python, to n running their code)."""
    spawned, alive = [], []
    for _ in range(runs):
        fleet = make()
        try:
            t0 = time.perf_counter()
            fleet.launch(n, kind)
            spawned.append(wait_for(lambda f=fleet: len(f.workers()) >= n, 120, "workers") - t0)
            if kind == "python":
                alive.append(wait_for(lambda f=fleet: f.alive_count() >= n, 120, "alive") - t0)
        finally:
            fleet.close()
    text = f"{median(spawned):.3f}s"
    return text + (f" (code running {median(alive):.3f}s)" if alive else "")


def replacement(make: Callable[[], Fleet], kills: int) -> str:
    """kill -9 of a worker to its replacement being spawned; each kill hits another worker."""
    latencies = []
    with running(make(), kills, "sleep") as fleet:
        for victim in sorted(fleet.workers())[:kills]:
            before = fleet.workers()
            t0 = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            latencies.append(
                wait_for(lambda b=before: bool(fleet.workers() - b), 30, "a replacement", POLL_S)
                - t0
            )
            wait_for(lambda: len(fleet.workers()) >= kills, 30, "the count to recover")
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    return f"p50 {p50 * 1000:.1f}ms  p95 {p95 * 1000:.1f}ms"


def status_latency(make: Callable[[], Fleet], n: int, calls: int) -> str:
    """The tool's own status command, end to end, with n workers."""
    times = []
    with running(make(), n, "sleep") as fleet:
        for _ in range(calls):
            t0 = time.perf_counter()
            subprocess.run(fleet.status_argv(), capture_output=True, check=False)
            times.append(time.perf_counter() - t0)
    return f"p50 {percentile(times, 0.5) * 1000:.0f}ms"


def idle_cost(make: Callable[[], Fleet], n: int, seconds: float) -> str:
    """CPU share of the supervisor and its helpers, and their memory, with n idle workers.

    RSS of the supervisor process; helper processes (our guardian and fork server) are
    shown apart, with the memory unique to them (their RSS is mostly shared libraries).
    """
    with running(make(), n, "python") as fleet:
        time.sleep(2.0)  # let start-up settle
        procs = fleet.supervisor_processes()
        before = sum(sum(p.cpu_times()[:2]) for p in procs)
        time.sleep(seconds)
        cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - before
        main = next(p for p in procs if p.pid == fleet.pid).memory_info().rss
        helpers = [p for p in procs if p.pid != fleet.pid]
        text = f"{100 * cpu / seconds:.2f}% of a core, RSS {main / 2**20:.0f} MiB"
        if helpers:
            rss = sum(p.memory_info().rss for p in helpers) / 2**20
            uss = sum(p.memory_full_info().uss for p in helpers) / 2**20
            text += f" (+ helpers: RSS {rss:.0f} MiB, {uss:.0f} MiB of it unique)"
    return text


def scale_times(make: Callable[[], Fleet], n: int, runs: int) -> str:
    """n -> 2n workers spawned, then back to n with the others gone."""
    up, down = [], []
    for _ in range(runs):
        with running(make(), n, "python") as fleet:
            t0 = time.perf_counter()
            if not fleet.scale(2 * n):
                return "cannot scale at runtime"
            t1 = wait_for(lambda: len(fleet.workers()) >= 2 * n, 120, "scale up")
            fleet.scale(n)
            t2 = wait_for(lambda: len(fleet.workers()) <= n, 120, "scale down")
            up.append(t1 - t0)
            down.append(t2 - t1)
    return f"up {median(up):.3f}s, down {median(down):.3f}s"


def shutdown_times(make: Callable[[], Fleet], n: int, runs: int) -> str:
    """SIGTERM to the supervisor until it and all n workers are gone."""
    times = []
    for _ in range(runs):
        with running(make(), n, "python") as fleet:
            t0 = time.perf_counter()
            fleet.shutdown()
            times.append(time.perf_counter() - t0)
    return f"{median(times):.3f}s"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default=",".join(FLEETS))
    parser.add_argument("--quick", action="store_true", help="fewer sizes and a 5 s idle window")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    sizes = [10, 200] if args.quick else [10, 50, 200]
    idle_s = 5.0 if args.quick else 20.0
    Measure = Callable[[Callable[[], Fleet]], str]
    figures: list[tuple[str, str, Measure]] = []  # (title, worker kind, measure)
    for kind in ("python", "sleep"):
        for n in sizes:
            start: Measure = lambda m, n=n, k=kind: start_times(m, n, k, args.runs)  # noqa: E731
            figures.append((f"start {n} {kind} workers", kind, start))
    figures += [
        ("replace a killed worker (20 kills)", "sleep", lambda m: replacement(m, 20)),
        ("status command, 200 workers (20 calls)", "sleep", lambda m: status_latency(m, 200, 20)),
        (f"idle cost, 200 workers ({idle_s:g}s)", "python", lambda m: idle_cost(m, 200, idle_s)),
        ("scale 200 -> 400 -> 200", "python", lambda m: scale_times(m, 200, args.runs)),
        ("shut down 200 workers", "python", lambda m: shutdown_times(m, 200, args.runs)),
    ]
    print(
        f"lifecycle benchmark: {args.runs} runs per median, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}"
    )
    width = max(len(FLEETS[t].name) if t in FLEETS else len(t) for t in tools) + 2
    for title, kind, measure in figures:
        print(f"\n{title}")
        for tool in tools:
            make = FLEETS.get(tool)
            if make is not None and kind not in make.kinds:
                continue
            try:
                text = measure(make) if make else "not installed (bench/baselines/install.sh)"
            except Exception as e:  # one tool failing must not hide the others' figures
                text = f"failed: {type(e).__name__}: {e}"
            print(f"  {make.name if make else tool:<{width}} {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
