"""IPC benchmark: messages per second from workers to the supervisor, its CPU per million
messages, `status` latency under a flood, and the raw pyzmq + msgpack ceiling beside them.

    python bench/ipc.py [--runs 3] [--quick]

Everything is measured in one run:

- Ingest. A real `supervisor run` (temporary supervisor.toml, like bench/fleets.py)
  runs n workers of `bench.workers.flood:main`, a module bot that uses the SDK. On a
  signal every worker sends a fixed number of `w.count("sent")` messages, either
  batched (the SDK's normal behaviour: a tight loop, 256 messages a frame) or one
  message per frame (`w.flush()` after each; see bench/workers/flood.py). The
  benchmark polls `status` (the supervisor's own message count, and each worker's
  "sent" counter) and times from the first poll that sees the flood arriving to the
  first that sees all of it: messages counted in between over that time (a poll
  costs the supervisor ~0.5 ms of CPU; they are 2-50 ms apart). Every
  flood is checked for loss: each worker's "sent" counter must have grown by exactly
  what it sent. The bot runs with heartbeat_timeout_s = 60s: heartbeats queue
  behind a worker's own frames (up to ~11,000 of them in libzmq's queues), and
  with the default 10 s a one-per-frame flood on a busy 2-core machine got
  healthy workers killed by the watchdog (and their queued frames rejected as
  late). A worker replaced during a flood stops the benchmark with the reason.
- Backlog drain (8 workers). The same batched flood, smaller, sent while the
  supervisor is stopped (SIGSTOP) and timed after SIGCONT: the supervisor alone,
  with no worker competing for the two cores. Not an aim; it shows what the
  supervisor could do if the producers cost nothing.
- CPU. utime + stime of the supervisor process (all its threads: the loop and
  libzmq's I/O thread; not the helpers) from before the signal to the end of the
  flood, per million messages ingested; the workers' likewise, and the rate that
  the CPUs would allow at those costs.
- Raw ceiling. Two bare processes (bench/workers/raw.py), PUSH -> PULL over ipc://,
  msgpack-packed frames of 1, 100 and 256 messages of the SDK's metric shape; the
  puller unpacks every frame. No SDK, no supervisor, no asyncio.
- `status` latency. The real CLI (`supervisor status -c CONFIG`) timed as a
  subprocess, 8 workers idle, then while they flood (batched). A flooded call
  counts only if the flood was provably still being ingested when it returned (a
  status request right after it shows messages still missing); otherwise more
  flood is sent until enough calls qualify.

Medians over --runs runs (the floods of each size and mode alternate, so noise
from other load on the machine spreads over all of them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack
import zmq

from bench.fleets import Ours
from bench.harness import REPO, median, percentile, wait_for
from supervisor.cli import client

RAW = REPO / "bench" / "workers" / "raw.py"
BOT = "w"
FLOOD_TIMEOUT_S = 180.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


# ---------------------------------------------------------------- a fleet of flood bots


@dataclass
class Flood:
    mode: str
    workers: int
    per_worker: int
    messages: int  # the supervisor's count of messages over the timed span
    seconds: float  # first poll that saw the flood arriving -> first poll that saw all of it
    counted: int  # "sent" increments counted, over all workers
    dropped: int  # metrics the SDK reports it shed
    cpu_s: float  # the supervisor's CPU from the signal to the end
    worker_cpu_s: float  # the workers' CPU, likewise

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def lost(self) -> int:
        return self.workers * self.per_worker - self.counted


class FloodFleet(Ours):
    """Ours (bench/fleets.py), running n flood bots as one module bot `w`."""

    name = "supervisor"

    def __init__(self) -> None:
        super().__init__()
        self.command_file = self.dir / "flood"
        self.runs = 0

    def bot_config(self, kind: str) -> str:
        return (
            f'module = "bench.workers.flood:main"\ncwd = "{REPO}"\n'
            f'heartbeat_timeout_s = "60s"\nenv = {{ BENCH_FLOOD_CMD = "{self.command_file}" }}'
        )

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = client.request(self.dir / "run", "status", {"bot": BOT})
        return result

    def start(self, n: int) -> None:
        self.n = n
        self.launch(n, "flood")

        def all_ready() -> bool:
            ws = self.status()["bots"][BOT]["workers"]
            return len(ws) == n and all(w["ready"] and w["sdk"] for w in ws)

        wait_for(all_ready, 60, f"{n} flood workers ready", poll_s=0.05)
        self.pids = [w["pid"] for w in self.status()["bots"][BOT]["workers"]]

    def flood(self, mode: str, per_worker: int) -> Flood:
        """Every worker sends per_worker messages; returns once all are counted.

        mode "backlog" is a batched flood sent while the supervisor is stopped (SIGSTOP,
        then SIGCONT once every worker is done): the supervisor drains a backlog alone,
        with no worker competing for the CPU."""
        self.runs += 1
        run = self.runs
        backlog = mode == "backlog"
        self.command_file.write_text(f"{'batched' if backlog else mode} {per_worker} {run}\n")
        before = self.status()
        sent0 = _sent(before)
        messages0 = before["supervisor"]["workers"]["messages"]
        dropped0 = sum(w["dropped"] for w in before["bots"][BOT]["workers"])
        expected = self.n * per_worker
        cpu0 = cpu_seconds(self.pid)
        worker_cpu0 = sum(cpu_seconds(p) for p in self.pids)
        if backlog:
            os.kill(self.pid, signal.SIGSTOP)
        try:
            for pid in self.pids:
                os.kill(pid, signal.SIGUSR1)
            if backlog:
                self._wait_workers_idle()
        finally:
            if backlog:
                os.kill(self.pid, signal.SIGCONT)
        t_signal = time.perf_counter()
        first: tuple[float, int, int] | None = None  # (time, messages, counted)
        deadline = time.perf_counter() + FLOOD_TIMEOUT_S
        while True:
            t_asked = time.perf_counter()
            st = self.status()
            t = (t_asked + time.perf_counter()) / 2  # when the supervisor read its counts
            self.check_workers(st, mode)
            messages = st["supervisor"]["workers"]["messages"]
            counted = _sent(st) - sent0
            done = all(w["metrics"].get("run") == run for w in st["bots"][BOT]["workers"])
            if done:
                break
            if first is None and counted > 0:
                first = (t, messages, counted)
                wait_s = 0.005
            elif first is None:
                wait_s = 0.002
            else:
                # Poll finely near the end (the end time is only as exact as the polling),
                # coarsely before it: each poll is a status request that costs the supervisor.
                rate = (counted - first[2]) / max(t - first[0], 1e-3)
                left_s = (expected - counted) / rate if rate > 0 else 0.05
                wait_s = min(0.05, max(0.002, left_s / 3))
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"{mode} flood of {self.n} x {per_worker}: {counted} counted after "
                    f"{FLOOD_TIMEOUT_S:g}s"
                )
            time.sleep(wait_s)
        cpu = cpu_seconds(self.pid) - cpu0
        worker_cpu = sum(cpu_seconds(p) for p in self.pids) - worker_cpu0
        if first is None:  # all of it came before the first poll: time it from the signal
            first = (t_signal, messages0, 0)
        dropped = sum(w["dropped"] for w in st["bots"][BOT]["workers"]) - dropped0
        return Flood(
            mode,
            self.n,
            per_worker,
            messages - first[1],
            t - first[0],
            counted,
            dropped,
            cpu,
            worker_cpu,
        )

    def check_workers(self, status: dict[str, Any], what: str) -> None:
        """The flood goes to the workers we signalled; a replaced one spoils it."""
        workers = status["bots"][BOT]["workers"]
        if [w["pid"] for w in workers] != self.pids:
            why = ", ".join(
                f"{BOT}[{w['slot']}]: restarts {w['restarts']}, unresponsive {w['unresponsive']}"
                for w in workers
                if w["pid"] not in self.pids
            )
            raise RuntimeError(f"workers were replaced during the {what} flood ({why})")

    def _wait_workers_idle(self, timeout_s: float = 15.0) -> None:
        """Until the workers' CPU time stands still for 150 ms: they have handed it all to
        libzmq. (If libzmq's queue filled up, they keep retrying and never stand still.)"""
        last, still = -1.0, 0
        deadline = time.perf_counter() + timeout_s
        while still < 3:
            time.sleep(0.05)
            now = sum(cpu_seconds(p) for p in self.pids)
            still, last = (still + 1 if now == last else 0), now
            if time.perf_counter() > deadline:
                raise TimeoutError(
                    f"the workers were still busy after {timeout_s:g}s: libzmq's queue to the "
                    "stopped supervisor is full (make the backlog flood smaller)"
                )


def _sent(status: dict[str, Any]) -> int:
    return sum(int(w["metrics"].get("sent", 0)) for w in status["bots"][BOT]["workers"])


@contextlib.contextmanager
def flood_fleet(n: int) -> Iterator[FloodFleet]:
    fleet = FloodFleet()
    try:
        fleet.start(n)
        yield fleet
    except BaseException:
        with contextlib.suppress(OSError):  # the supervisor's last words, before they go
            tail = (fleet.dir / "log").read_text(errors="replace").splitlines()[-20:]
            print("\n".join(["supervisor log, last lines:", *tail]), file=sys.stderr)
        raise
    finally:
        fleet.close()  # shutdown; whatever is left is killed


@dataclass
class StatusTimes:
    cli: list[float]  # `supervisor status -c CONFIG` as a subprocess, end to end
    cli_cpu: list[float]  # the CPU time of that subprocess
    request: list[float]  # the same request from this process (no interpreter start-up)
    floods: int = 0  # floods it took to have every flooded call inside one


def _cli(fleet: FloodFleet) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one CLI status call."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(fleet.status_argv(), capture_output=True, check=False)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return took, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _request(fleet: FloodFleet, run: int) -> tuple[float, int, bool]:
    """A status request, timed: (seconds, "sent" so far, whether flood `run` is all in)."""
    t0 = time.perf_counter()
    st = fleet.status()
    took = time.perf_counter() - t0
    fleet.check_workers(st, "status")
    done = all(w["metrics"].get("run") == run for w in st["bots"][BOT]["workers"])
    return took, _sent(st), done


def idle_status(fleet: FloodFleet, calls: int) -> StatusTimes:
    times = StatusTimes([], [], [])
    for _ in range(calls):
        wall, cpu = _cli(fleet)
        times.cli.append(wall)
        times.cli_cpu.append(cpu)
        times.request.append(_request(fleet, fleet.runs)[0])
    return times


def flooded_status(fleet: FloodFleet, calls: int, per_worker: int) -> StatusTimes:
    """Status calls that each returned while a batched flood was still being ingested: a
    request right after each shows messages still missing, else the call does not count and
    another flood follows."""
    times = StatusTimes([], [], [])
    while len(times.cli) < calls:
        times.floods += 1
        fleet.runs += 1
        run = fleet.runs
        fleet.command_file.write_text(f"batched {per_worker} {run}\n")
        sent0 = _sent(fleet.status())
        for pid in fleet.pids:
            os.kill(pid, signal.SIGUSR1)
        wait_for(lambda r=run, s=sent0: _request(fleet, r)[1] > s, 30, "the flood", poll_s=0.002)
        while len(times.cli) < calls:
            wall, cpu = _cli(fleet)
            took, _, done = _request(fleet, run)
            if done:
                break  # the flood may have ended during these calls: they do not count
            times.cli.append(wall)
            times.cli_cpu.append(cpu)
            times.request.append(took)
        wait_for(lambda r=run: _request(fleet, r)[2], FLOOD_TIMEOUT_S, "the flood to end")
    return times


# ---------------------------------------------------------------- the raw ceiling


def raw_rate(per_frame: int, count: int, endpoint_dir: Path) -> float:
    """Messages per second from a bare PUSH process to a bare PULL process."""
    count -= count % per_frame
    endpoint = f"ipc://{endpoint_dir / f'raw-{per_frame}'}"
    python = sys.executable
    procs: list[subprocess.Popen[Any]] = []
    try:
        puller = subprocess.Popen(
            [python, str(RAW), "pull", endpoint, str(count)], stdout=subprocess.PIPE, text=True
        )
        procs.append(puller)
        assert puller.stdout is not None
        if puller.stdout.readline().strip() != "bound":
            raise RuntimeError("the raw puller did not start")
        pusher = subprocess.Popen(
            [python, str(RAW), "push", endpoint, str(count), str(per_frame)],
            stdin=subprocess.PIPE,
        )
        procs.append(pusher)
        out, _ = puller.communicate(timeout=120)
        assert pusher.stdin is not None
        pusher.stdin.close()  # the puller has it all: the pusher may close its socket now
        pusher.wait(timeout=30)
        result = json.loads(out)
        if result["messages"] + per_frame < count:  # the first frame is not in the count
            raise RuntimeError(f"raw {per_frame}/frame: {result['messages']} of {count} came")
        return float(result["messages"]) / float(result["seconds"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


# ---------------------------------------------------------------- printing


def rate_text(rates: list[float]) -> str:
    runs = ", ".join(f"{r / 1000:,.0f}k" for r in rates)
    return f"{median(rates):>12,.0f} msgs/s   (runs: {runs})"


def loss_text(floods: list[Flood]) -> str:
    lost = sum(f.lost for f in floods)
    total = sum(f.workers * f.per_worker for f in floods)
    if lost == 0:
        return f"exact: {total:,} of {total:,} counted"
    dropped = sum(f.dropped for f in floods)
    return f"LOST {lost:,} of {total:,} ({dropped:,} shed by the SDK, as it reported)"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="one run, smaller floods, 10 status calls"
    )
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    batched_n = 100_000 if args.quick else 500_000  # per worker
    single_n = 5_000 if args.quick else 25_000  # per worker
    # Per worker, all waiting in libzmq's queue (SNDHWM 1,000 frames, and the writer learns of
    # reads only every 500): 100,000 is 391 frames.
    backlog_n = 50_000 if args.quick else 100_000
    raw_single_n = 200_000 if args.quick else 500_000
    raw_batched_n = 1_000_000 if args.quick else 2_000_000
    calls = 10 if args.quick else 20
    sizes = (1, 8)

    print(
        f"IPC benchmark: {runs} runs per median, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, pyzmq {zmq.__version__} (libzmq "
        f"{zmq.zmq_version()}), msgpack {'.'.join(map(str, msgpack.version))}; "
        f"load average {os.getloadavg()[0]:.2f} at the start",
        flush=True,
    )
    floods: dict[tuple[int, str], list[Flood]] = {}
    idle = flooded = StatusTimes([], [], [])
    for n in sizes:
        with flood_fleet(n) as fleet:
            plan = [("batched", batched_n), ("single", single_n)]
            if n == 8:
                plan.append(("backlog", backlog_n))
            for _ in range(runs):
                for mode, per_worker in plan:
                    floods.setdefault((n, mode), []).append(fleet.flood(mode, per_worker))
            if n == 8:
                idle = idle_status(fleet, calls)
                # A flood of ~4 s at the rate just measured; the calls take 1-3 s.
                rate = median([f.rate for f in floods[(n, "batched")]])
                per_worker = max(50_000, min(1_500_000, int(rate * 4 / n)))
                flooded = flooded_status(fleet, calls, per_worker)

    raw: dict[int, list[float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-raw-", dir="/tmp"))
    try:
        for _ in range(runs):
            for per_frame, count in ((1, raw_single_n), (100, raw_batched_n), (256, raw_batched_n)):
                raw.setdefault(per_frame, []).append(raw_rate(per_frame, count, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    how = {
        "batched": "batched (SDK, 256/frame)",
        "single": "one per frame (flush each)",
        "backlog": "batched, backlog drain",
    }

    def name(n: int, mode: str) -> str:
        return f"{n} worker{'s' if n > 1 else ''}, {how[mode]}"

    cases = list(floods)
    print(
        f"\nmessages/s, workers -> supervisor (real `supervisor run`; each worker sends "
        f"{batched_n:,} batched, {single_n:,} one per frame;\n  backlog drain: {backlog_n:,} "
        f"each, sent while the supervisor is SIGSTOPped, timed after SIGCONT)"
    )
    for n, mode in cases:
        fs = floods[(n, mode)]
        print(f"  {name(n, mode):<38} {rate_text([f.rate for f in fs])}  {loss_text(fs)}")

    print("\nraw pyzmq + msgpack ceiling (bare PUSH -> PULL over ipc://, one sender)")
    for per_frame, rates in raw.items():
        what = "one message per frame" if per_frame == 1 else f"{per_frame} messages per frame"
        print(f"  {what:<38} {rate_text(rates)}")

    cpus = os.cpu_count() or 1
    print(
        "\nCPU seconds per million messages: the supervisor process, the workers beside it, and\n"
        f"  the most msgs/s that {cpus} CPUs allow at that cost (the supervisor at most one core)"
    )
    for n, mode in cases:
        fs = floods[(n, mode)]
        millions = [f.workers * f.per_worker / 1e6 for f in fs]
        sup = median([f.cpu_s / m for f, m in zip(fs, millions, strict=True)])
        workers = median([f.worker_cpu_s / m for f, m in zip(fs, millions, strict=True)])
        busy = median([f.cpu_s / f.seconds for f in fs])
        # A backlog is drained by the supervisor alone, after the workers have sent it.
        alone = mode == "backlog"
        bound = (1 / sup if alone else min(cpus / (sup + workers), 1 / sup, n / workers)) * 1e6
        print(
            f"  {name(n, mode):<38} {sup:6.2f} s   ({100 * busy:3.0f}% of a core while "
            f"ingesting)   workers {workers:6.2f} s   at most {bound:,.0f} msgs/s"
        )

    print(f"\n`supervisor status` latency, 8 workers ({calls} calls, p50 / max)")
    p50 = {}
    for what, times in (("idle", idle), ("while they flood (batched)", flooded)):
        p50[what] = percentile(times.cli, 0.5)
        print(
            f"  {'CLI, ' + what:<38} {p50[what] * 1000:5.0f} / {max(times.cli) * 1000:4.0f} ms"
            f"   (its CPU {percentile(times.cli_cpu, 0.5) * 1000:.0f} ms; the request alone, "
            f"in-process: {percentile(times.request, 0.5) * 1000:.1f} / "
            f"{max(times.request) * 1000:.1f} ms)"
        )
    if flooded.floods > 1:
        print(f"  (it took {flooded.floods} floods to have {calls} calls inside one)")

    print("\nverdict against the aims")
    ceiling = median(raw[100])
    aims: list[tuple[str, bool]] = []
    for n in sizes:
        batched = median([f.rate for f in floods[(n, "batched")]])
        single = median([f.rate for f in floods[(n, "single")]])
        workers = f"{n} worker{'s' if n > 1 else ''}"
        aims.append((
            f"{workers}, batched >= 1/2 the raw ceiling at 100/frame ({ceiling / 2:,.0f}): "
            f"{batched:,.0f}, {batched / ceiling:.2f} of the ceiling",
            batched >= ceiling / 2,
        ))  # fmt: skip
        aims.append((
            f"{workers}, batched >= 10x one per frame: {batched / single:.1f}x",
            batched >= 10 * single,
        ))  # fmt: skip
    ratio = p50["while they flood (batched)"] / p50["idle"]
    aims.append((f"status p50 while flooded <= 2x idle: {ratio:.2f}x", ratio <= 2))
    lost = sum(f.lost for fs in floods.values() for f in fs)
    aims.append((f"no message lost: {lost:,} lost", lost == 0))
    for text, met in aims:
        print(f"  {'met   ' if met else 'MISSED'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
