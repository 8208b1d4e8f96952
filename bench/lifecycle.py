"""Lifecycle benchmark: start, replace, status, idle cost, scale, shutdown.

    python bench/lifecycle.py [--runs 3] [--tools supervisor,circus,supervisord] [--quick]

Prints each figure for every tool side by side, measured in the same run the
same way (see harness.py). Baselines are Circus and supervisord installed by
`bench/baselines/install.sh` into bench/.baselines; a missing one is skipped
with a note.
"""

from __future__ import annotations

import argparse
import compileall
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
from bench.harness import (
    POLL_S,
    REPO,
    Fleet,
    children,
    median,
    percentile,
    running,
    running_argv,
    wait_for,
    worker_argv,
)

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
            if kind in ("python", "ready"):
                alive.append(wait_for(lambda f=fleet: f.alive_count() >= n, 120, "alive") - t0)
        finally:
            fleet.close()
    text = f"{median(spawned):.3f}s"
    if kind == "ready":
        return f"{median(alive):.3f}s (all spawned {text})"
    return text + (f" (code running {median(alive):.3f}s)" if alive else "")


def first_worker(make: Callable[[], Fleet], runs: int) -> str:
    """Launch to the first of 10 `sleep` workers running (its exec done: cmdline is sleep)."""
    argv = worker_argv("sleep")
    times = []
    for _ in range(runs):
        fleet = make()
        try:
            t0 = time.perf_counter()
            fleet.start(10, "sleep")
            seen = lambda p=fleet.pid: any(running_argv(c, argv) for c in children(p))  # noqa: E731
            times.append(wait_for(seen, 60, "a first worker", POLL_S) - t0)
        finally:
            fleet.close()
    return f"{median(times):.3f}s"


def floors(runs: int) -> list[tuple[str, str]]:
    """What no supervisor can beat here: interpreters that do nothing, and one bare fork."""
    python, sleep = sys.executable, worker_argv("sleep")
    fork = (
        "import os, sys\n"
        "if os.fork() == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n"
        "sys.stdin.read()\n"  # stay the parent until the benchmark closes our stdin
    )
    rows = [
        (
            "bare interpreter (python -I -S -c pass), to its exit",
            [python, "-I", "-S", "-c", "pass"],
        ),
        ("python -c pass, to its exit", [python, "-c", "pass"]),
    ]
    out = [
        (title, f"{median([_run_once(argv) for _ in range(runs)]):.3f}s") for title, argv in rows
    ]
    forks = [
        _first_child(["python", "-I", "-S", "-c", fork, *sleep], python, sleep) for _ in range(runs)
    ]
    out.append(
        ("a bare fork + exec from python -I -S, to the child's exec", f"{median(forks):.3f}s")
    )
    rss = _idle_rss_mib([python, "-I", "-S", "-c", "import sys; sys.stdin.read()"])
    asyncio_rss = _idle_rss_mib([python, "-c", "import sys, asyncio; sys.stdin.read()"])
    out.append(
        (
            "idle RSS: python -I -S / python with asyncio imported",
            f"{rss:.1f} / {asyncio_rss:.1f} MiB",
        )
    )
    return out


def _run_once(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - t0


def _first_child(argv: list[str], executable: str, child_argv: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, executable=executable, stdin=subprocess.PIPE)
    try:
        seen = lambda: any(running_argv(c, child_argv) for c in children(proc.pid))  # noqa: E731
        return wait_for(seen, 30, "the forked child", POLL_S) - t0
    finally:
        for pid in children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.communicate()


def _idle_rss_mib(argv: list[str]) -> float:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE)
    try:
        time.sleep(1.0)  # its imports are done well before
        with open(f"/proc/{proc.pid}/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kib / 1024
    finally:
        proc.communicate()


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
    parser.add_argument("--only", default="", help="only the figures whose title has this text")
    args = parser.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    sizes = [10, 200] if args.quick else [10, 50, 200]
    idle_s = 5.0 if args.quick else 20.0
    Measure = Callable[[Callable[[], Fleet]], str]
    figures: list[tuple[str, str, Measure]] = [  # (title, worker kind, measure)
        (
            "launch -> first worker (of 10 sleep workers)",
            "sleep",
            lambda m: first_worker(m, args.runs),
        ),
    ]
    for kind in ("python", "sleep", "ready"):
        for n in sizes:
            start: Measure = lambda m, n=n, k=kind: start_times(m, n, k, args.runs)  # noqa: E731
            title = f"start {n} {kind} workers"
            if kind == "ready":
                title = f"{n} bots importing ~0.15 s of modules, launch -> all READY"
            figures.append((title, kind, start))
    figures += [
        ("replace a killed worker (20 kills)", "sleep", lambda m: replacement(m, 20)),
        ("status command, 200 workers (20 calls)", "sleep", lambda m: status_latency(m, 200, 20)),
        (f"idle cost, 200 workers ({idle_s:g}s)", "python", lambda m: idle_cost(m, 200, idle_s)),
        ("scale 200 -> 400 -> 200", "python", lambda m: scale_times(m, 200, args.runs)),
        ("shut down 200 workers", "python", lambda m: shutdown_times(m, 200, args.runs)),
    ]
    figures = [f for f in figures if args.only in f[0]]
    # Our package as pip installs it: with bytecode. A checkout run with PYTHONDONTWRITEBYTECODE
    # (set on this machine) would compile every module at each launch, ~0.1 s of the start-up.
    compiled = compileall.compile_dir(REPO / "supervisor", quiet=1)
    print(
        f"lifecycle benchmark: {args.runs} runs per median, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if not compiled:
        print("  (compiling supervisor/*.py to bytecode failed: start-up figures include it)")
    print("\nfloors (this machine, this run)")
    for title, text in floors(args.runs):
        print(f"  {title:<{60}} {text}", flush=True)
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
