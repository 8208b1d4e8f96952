"""Shared pieces of the benchmarks: a fleet of ours or a baseline's, measured the same way.

Every tool is observed from outside, identically: a worker "runs" when it
is a direct child of the supervisor process (read from
/proc/PID/task/PID/children, one small read, so polling is cheap and exact
to well under a millisecond), and a Python worker is "alive" once its code
has run (it appends its pid to a marker file). Timings use
`time.perf_counter`; figures are medians over several runs.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SLEEPER = REPO / "bench" / "workers" / "sleeper.py"
READY = REPO / "bench" / "workers" / "ready.py"  # imports ~0.15 s of modules, then READY
POLL_S = 0.0005  # replacement latency is ~1 ms, so poll finely there
COARSE_POLL_S = 0.005  # elsewhere a poller of our own would eat the CPU it measures


def worker_argv(kind: str) -> list[str]:
    """The worker every tool runs: a sleeping Python script, one that imports a bot's usual
    modules and then says READY ("ready"), or `sleep`."""
    if kind == "python":
        return [sys.executable, str(SLEEPER)]
    if kind == "ready":
        return [sys.executable, str(READY)]
    return [shutil.which("sleep") or "/bin/sleep", "100000"]


def children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read().split()}
    except OSError:
        return set()


def running_argv(pid: int, argv: list[str]) -> bool:
    """Does process pid run argv (its cmdline starts so)? False once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[: len(argv)] == [a.encode() for a in argv]
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = COARSE_POLL_S
) -> float:
    """Poll until predicate() holds; returns the perf_counter time it first held."""
    deadline = time.perf_counter() + timeout_s
    while True:
        if predicate():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Fleet(abc.ABC):
    """One supervisor (ours or a baseline) running one bot `w` of n workers."""

    name: str
    kinds: frozenset[str] = frozenset({"python", "sleep", "ready"})  # the workers it can run

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
        self.marker = self.dir / "alive"
        self.proc: subprocess.Popen[bytes] | None = None
        self.helpers: set[int] = set()  # children of the supervisor that are not workers

    # ------------------------------------------------------------ what each tool provides

    @abc.abstractmethod
    def launch(self, n: int, kind: str) -> None:
        """Write the tool's config for n workers and start its supervisor; return at once."""

    @abc.abstractmethod
    def status_argv(self) -> list[str]:
        """The tool's own CLI status command, as an operator types it."""

    def start(self, n: int, kind: str) -> None:
        """Start the supervisor and return at once, without waiting for it to answer."""
        self.launch(n, kind)  # the baselines' launch already returns at once

    def scale(self, n: int) -> bool:
        """Ask for n workers at runtime; False if the tool cannot."""
        return False

    @abc.abstractmethod
    def request_shutdown(self) -> None:
        """Ask the supervisor to stop everything (returns before it is done)."""

    # ------------------------------------------------------------ shared

    def env(self) -> dict[str, str]:
        return dict(os.environ, BENCH_MARKER=str(self.marker))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def workers(self) -> set[int]:
        return children(self.pid) - self.helpers

    def alive_count(self) -> int:
        try:
            return self.marker.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def supervisor_processes(self) -> list[psutil.Process]:
        """The supervisor and its helpers (our guardian), for CPU and RSS figures."""
        return [psutil.Process(p) for p in {self.pid, *self.helpers}]

    def shutdown(self, timeout_s: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.request_shutdown()
        self.proc.wait(timeout=timeout_s)

    def close(self) -> None:
        """Whatever happened, leave nothing running."""
        with contextlib.suppress(Exception):
            self.shutdown(timeout_s=30)
        if self.proc is not None and self.proc.poll() is None:
            for pid in children(self.pid):
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running(fleet: Fleet, n: int, kind: str, timeout_s: float = 120.0) -> Iterator[Fleet]:
    """A fleet with n workers up (and alive, for Python workers)."""
    try:
        fleet.launch(n, kind)
        wait_for(lambda: len(fleet.workers()) >= n, timeout_s, f"{fleet.name}: {n} workers")
        if kind == "python":
            wait_for(lambda: fleet.alive_count() >= n, timeout_s, f"{fleet.name}: {n} alive")
        yield fleet
    finally:
        fleet.close()
