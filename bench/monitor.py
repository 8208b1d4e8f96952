"""Monitor benchmark: what sampling 200 workers at 1 Hz costs, and /metrics scrape latency.

    python bench/monitor.py [--workers 200] [--seconds 20] [--runs 3] [--only cgroups|monitor]

Runs the same fleet of idle `sleep` workers twice, without the monitor
plugin and with it (interval 1 s, one alert rule), and prints the
supervisor's CPU share over the window for both: the difference is what
monitoring costs. Then it times /metrics and /api/dashboard scrapes.

With root and writable cgroups it also runs the fleet with a cgroup per worker
(`per = "worker"`) and times one sampling pass over all workers three ways: /proc
(what the monitor reads per pid), each worker's cgroup, and the bot's one cgroup.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import psutil

from bench.fleets import Ours
from bench.harness import percentile, running
from supervisor.cli import client
from supervisor.config import cgroup_host
from supervisor.daemon.cgroups import CgroupTree, Group, group_stats
from supervisor.plugins.monitor import procstat

MONITOR = """
[plugins.monitor]
listen = "127.0.0.1:0"
interval_s = "1s"

[[plugins.monitor.alerts]]
name = "leak"
metric = "rss_growth_mb_per_h"
above = 200
for_s = "1m"
"""


class WithMonitor(Ours):
    name = "supervisor + monitor"

    def extra_config(self) -> str:
        return MONITOR


class WithCgroups(Ours):
    name = "supervisor, a cgroup per worker"

    def extra_config(self) -> str:
        return '\n[bots.w.resources]\nper = "worker"\npids_max = 100\n'


def pass_ms(sample: Callable[[], object], passes: int = 20) -> float:
    """Median wall time of one sampling pass, in ms."""
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        sample()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def groups_of(fleet: Ours) -> tuple[Group, list[Group]]:
    """The bot's group and each worker's, read back from the supervisor's subtree."""
    host = cgroup_host.read_host()
    hierarchies = [h for h in host.layout.hierarchies() if host.usable(h)]
    name = CgroupTree(fleet.dir / "run", guardian=None, host=host).name  # type: ignore[arg-type]
    bot = Group("w", {h: os.path.join(h.directory, name, "w") for h in hierarchies})
    first = next(iter(bot.dirs.values()))
    workers = [
        Group(f"w/{d}", {h: os.path.join(path, d) for h, path in bot.dirs.items()})
        for d in sorted(os.listdir(first))
        if os.path.isdir(os.path.join(first, d))
    ]
    return bot, workers


def cgroup_costs(workers: int, runs: int) -> dict[str, list[float]]:
    costs: dict[str, list[float]] = {"proc": [], "worker groups": [], "bot group": []}
    for _ in range(runs):
        with running(WithCgroups(), workers, "sleep") as fleet:
            status = client.request(fleet.dir / "run", "status")
            pids = [w["pid"] for w in status["bots"]["w"]["workers"] if w["pid"]]
            bot, groups = groups_of(fleet)
            assert len(groups) == len(pids), (len(groups), len(pids))
            costs["proc"].append(pass_ms(partial(_each, procstat.sample, pids)))
            costs["worker groups"].append(pass_ms(partial(_each, _light, groups)))
            costs["bot group"].append(pass_ms(partial(group_stats, bot)))
    return costs


def _each(sample: Callable[[Any], object], items: list[Any]) -> None:
    for item in items:
        sample(item)


def _light(group: Group) -> object:
    return group_stats(group, light=True)  # what status reads of a worker's own group


def print_cgroup_costs(workers: int, costs: dict[str, list[float]]) -> None:
    print(f"\none sampling pass over {workers} workers (median of 20 passes, median of runs)")
    print(f"  /proc/PID per worker (monitor)  {statistics.median(costs['proc']):7.2f} ms")
    print(f"  each worker's cgroup (3 files)  {statistics.median(costs['worker groups']):7.2f} ms")
    print(f"  the bot's one cgroup (all)      {statistics.median(costs['bot group']):7.2f} ms")


def cpu_share(fleet: Ours, seconds: float) -> float:
    """Percent of one core the supervisor process used over the window."""
    proc = psutil.Process(fleet.pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(seconds)
    return 100 * (sum(proc.cpu_times()[:2]) - before) / seconds


def scrape_ms(url: str, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read()
        times.append((time.perf_counter() - t0) * 1000)
    return percentile(times, 0.5), percentile(times, 0.95)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("cgroups", "monitor"), default=None)
    args = parser.parse_args()
    if args.only != "monitor":
        problem = cgroup_host.read_host().cannot_create() or ("" if os.geteuid() == 0 else "root")
        if problem:
            print(f"cgroup sampling skipped: {problem}")
        else:
            print_cgroup_costs(args.workers, cgroup_costs(args.workers, args.runs))
        if args.only == "cgroups":
            return 0
    print(f"monitor benchmark: {args.workers} idle workers, {args.seconds:g} s windows, ", end="")
    print(f"{args.runs} runs")
    shares: dict[str, list[float]] = {"without": [], "with": []}
    scrapes: dict[str, list[tuple[float, float]]] = {"/metrics": [], "/api/dashboard": []}
    sample_ms: list[float] = []
    for _ in range(args.runs):
        for label, make in (("without", Ours), ("with", WithMonitor)):
            with running(make(), args.workers, "sleep") as fleet:
                time.sleep(3.0)  # let start-up settle (and the monitor take its first samples)
                shares[label].append(cpu_share(fleet, args.seconds))
                if label == "with":
                    status = client.request(fleet.dir / "run", "status")
                    monitor = status["plugins"]["monitor"]
                    sample_ms.append(monitor["sample_ms"])
                    for path, results in scrapes.items():
                        results.append(scrape_ms(f"http://{monitor['listen']}{path}", 20))
    without, with_ = statistics.median(shares["without"]), statistics.median(shares["with"])
    print(f"\nsupervisor CPU, {args.workers} workers, idle")
    print(f"  without the monitor           {without:6.2f} % of a core")
    print(f"  with the monitor at 1 Hz      {with_:6.2f} % of a core")
    print(f"  monitoring costs              {with_ - without:6.2f} % of a core (aim: under 2 %)")
    print(f"  one sampling pass             {statistics.median(sample_ms):6.2f} ms")
    print("\nscrape latency (20 requests)     p50        p95")
    for path, results in scrapes.items():
        p50 = statistics.median(r[0] for r in results)
        p95 = statistics.median(r[1] for r in results)
        print(f"  {path:<28} {p50:6.1f} ms  {p95:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
