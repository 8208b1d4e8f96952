"""Chaos soak: kill -9 a random worker every interval, for a duration, and watch the supervisor.

    .venv/bin/python -m bench.chaos                      # 50 workers, 100 ms, 10 min, lenient
    .venv/bin/python -m bench.chaos --duration 60 --policy default
    .venv/bin/python -m bench.chaos --policy both --default-duration 120

Per run it prints: kills sent, restarts the supervisor counted, zombies seen at any sample
(its direct children in state Z; "persisting" = the same pid in two samples a second apart, a
real leak, unlike the instant between exit and reap), whether the worker count came back after
the storm (lenient policy: restarts without limit) or what the default policy did (slots failed
by the per-worker crash loop, workers never killed still running), RSS and open fds of the
supervisor over time with their least-squares slope, `status` latency p50/p99 under the storm,
and what `shutdown` and a `kill -9` of the supervisor left behind (processes in our directory).

Not a test: a shared machine makes the figures noisy; read them with `uptime`'s load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.harness import children, percentile
from supervisor.cli import client

LENIENT = """max_restarts = 1000000
restart_window_s = "1s"
backoff_initial_s = "10ms"
backoff_max_s = "100ms"
"""


@dataclass
class Samples:
    t: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    zombie_samples: int = 0  # samples that saw at least one
    zombies_max: int = 0
    zombies_persisting: set[int] = field(default_factory=set)
    status_s: list[float] = field(default_factory=list)
    status_errors: int = 0
    running: list[int] = field(default_factory=list)


def slope_per_min(t: list[float], y: list[int]) -> float:
    """Least-squares slope of y over t, per minute."""
    if len(t) < 3:
        return 0.0
    return float(statistics.linear_regression(t, y).slope) * 60


def config(workers: int, policy: str) -> str:
    return (
        '[supervisor]\nrun_dir = "run"\nlog_format = "json"\nlog_level = "info"\n'
        "shutdown_timeout_s = 30\n\n"
        f'[bots.storm]\ncommand = ["sleep", "100000"]\nworkers = {workers}\n'
        'ready_after_s = 0\nstop_timeout_s = "1s"\n' + (LENIENT if policy == "lenient" else "")
    )


class Soak:
    def __init__(self, workers: int, policy: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
        self.run_dir = self.dir / "run"
        (self.dir / "supervisor.toml").write_text(config(workers, policy))
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []
        self.samples = Samples()
        self.stop = threading.Event()
        self.bot_name = "storm"
        self.env: dict[str, str] = {}  # added to the supervisor's environment

    # ------------------------------------------------------------ the supervisor

    def start(self) -> None:
        log = open(self.dir / "supervisor.log", "ab")  # noqa: SIM115  (the child owns it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "-c", str(self.dir / "supervisor.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env=os.environ | self.env,
        )
        log.close()
        self.until(lambda: self.request("ping", 1.0), 30, "the control socket")
        self.until(lambda: self.running() == self.workers, 120, "the fleet")

    def request(self, cmd: str, timeout_s: float = 10.0, **args: Any) -> Any:
        try:
            return client.request(self.run_dir, cmd, args, timeout_s)
        except Exception:
            return None

    def bot(self) -> dict[str, Any]:
        status = self.request("status")
        return status["bots"][self.bot_name] if status else {}

    def running(self) -> int:
        return int(self.bot().get("running", -1))

    def until(self, predicate: Any, timeout_s: float, what: str) -> float:
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
            time.sleep(0.05)
        return time.monotonic() - start

    def describe(self, worker: dict[str, Any]) -> dict[str, Any]:
        """A slot that did not come back: its status line, its process as /proc sees it, and
        the supervisor's log lines that name its pid (the log is kept for reading)."""
        pid = worker.get("pid")
        keep = Path(f"/tmp/chaos-stuck-{os.getpid()}.log")
        shutil.copyfile(self.dir / "supervisor.log", keep)
        lines = [
            line.strip()
            for line in keep.read_text(errors="replace").splitlines()
            if pid and re.search(rf'"pid":\s*{pid}\b', line)
        ]
        return {"status": worker, "proc_state": _state(pid) if pid else None,
                "log_lines": lines[-8:], "log_kept": str(keep)}  # fmt: skip

    def leftovers(self) -> list[int]:
        """Live processes whose working directory is ours (the workers' default cwd)."""
        found = []
        for p in psutil.process_iter(["pid", "cwd", "status"]):
            cwd = p.info["cwd"] or ""
            if cwd.startswith(str(self.dir)) and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p.pid)
        return found

    # ------------------------------------------------------------ the storm and its watchers

    def poll_status(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            status = self.request("status", 10.0)
            if status is None:
                self.samples.status_errors += 1
            else:
                self.samples.status_s.append(time.perf_counter() - t0)
                bot = status["bots"]["storm"]
                self.pids = [w["pid"] for w in bot["workers"] if w["pid"]]
                self.samples.running.append(bot["running"])
            self.stop.wait(0.2)

    def sample(self, every_s: float) -> None:
        assert self.proc is not None
        me = psutil.Process(self.proc.pid)
        start, last_zombies = time.monotonic(), set()
        while not self.stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.t.append(time.monotonic() - start)
                self.samples.rss.append(me.memory_info().rss)
                self.samples.fds.append(me.num_fds())
            zombies = {p for p in children(self.proc.pid) if _state(p) == "Z"}
            if zombies:
                self.samples.zombie_samples += 1
                self.samples.zombies_max = max(self.samples.zombies_max, len(zombies))
            self.samples.zombies_persisting |= zombies & last_zombies
            last_zombies = zombies
            self.stop.wait(every_s)

    def storm(self, interval_s: float, duration_s: float) -> int:
        assert self.proc is not None
        kills, end = 0, time.monotonic() + duration_s
        next_at = time.monotonic()
        while time.monotonic() < end:
            live = children(self.proc.pid)
            targets = [p for p in self.pids if p in live]  # workers, never the helpers
            if targets:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(random.choice(targets), signal.SIGKILL)
                    kills += 1
            next_at += interval_s
            time.sleep(max(0.0, next_at - time.monotonic()))  # the storm's pace
        return kills

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.leftovers():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return ""


def run(workers: int, interval_s: float, duration_s: float, policy: str) -> dict[str, Any]:
    soak = Soak(workers, policy)
    result: dict[str, Any] = {"policy": policy, "workers": workers, "interval_s": interval_s,
                              "duration_s": duration_s}  # fmt: skip
    try:
        soak.start()
        before = {w["slot"]: w["pid"] for w in soak.bot()["workers"]}
        watchers = [
            threading.Thread(target=soak.poll_status, daemon=True),
            threading.Thread(target=soak.sample, args=(1.0,), daemon=True),
        ]
        for w in watchers:
            w.start()
        soak.until(lambda: soak.pids, 10, "a first status")
        result["kills"] = soak.storm(interval_s, duration_s)
        bot = soak.bot()
        result["restarts_counted"] = bot.get("restarts")
        if policy == "lenient":
            try:
                result["restored_after_s"] = round(
                    soak.until(lambda: soak.running() == workers, 120, "the count back"), 2
                )
            except TimeoutError:
                result["restored_after_s"] = None
            after = soak.bot()
            states = [w["state"] for w in after.get("workers", [])]
            stuck = [w for w in after.get("workers", []) if w["state"] != "running"]
            if stuck:
                result["stuck"] = [soak.describe(w) for w in stuck]
            result["after_storm"] = {
                "bot_state": after.get("state"),
                "running": after.get("running"),
                "desired": after.get("desired"),
                "worker_states": {s: states.count(s) for s in sorted(set(states))},
            }
        else:
            # Let the backoffs run out (30 s at most by default): then each slot is either
            # running again or failed by its crash loop.
            def settled_states() -> bool:
                return all(w["state"] in ("running", "failed") for w in soak.bot()["workers"])

            with contextlib.suppress(TimeoutError):
                result["settled_after_s"] = round(soak.until(settled_states, 90, "settling"), 1)
            settled = soak.bot()
            states = [w["state"] for w in settled["workers"]]
            never_killed = [s for s, pid in before.items() if pid in soak.pids]
            result["default_policy"] = {
                "bot_state": settled["state"],
                "running": settled["running"],
                "worker_states": {s: states.count(s) for s in sorted(set(states))},
                "never_killed_still_running": len(never_killed),
            }
        soak.stop.set()
        for w in watchers:
            w.join(timeout=15)
        s = soak.samples
        result["zombies"] = {"samples_with_any": s.zombie_samples, "max_at_once": s.zombies_max,
                             "persisting": len(s.zombies_persisting)}  # fmt: skip
        warm = len(s.t) // 10  # the first tenth: allocator and caches warming up
        result["rss_mib"] = {
            "first": round(s.rss[0] / 2**20, 1) if s.rss else None,
            "last": round(s.rss[-1] / 2**20, 1) if s.rss else None,
            "max": round(max(s.rss) / 2**20, 1) if s.rss else None,
            "slope_kib_per_min": round(slope_per_min(s.t[warm:], s.rss[warm:]) / 1024, 1),
        }
        result["fds"] = {
            "first": s.fds[0] if s.fds else None,
            "last": s.fds[-1] if s.fds else None,
            "max": max(s.fds) if s.fds else None,
            "slope_per_min": round(slope_per_min(s.t[warm:], s.fds[warm:]), 2),
        }
        if s.status_s:
            result["status_ms"] = {
                "n": len(s.status_s),
                "p50": round(percentile(s.status_s, 0.5) * 1e3, 1),
                "p99": round(percentile(s.status_s, 0.99) * 1e3, 1),
                "errors": s.status_errors,
            }
        # Shutdown leaves nothing ...
        soak.request("shutdown")
        assert soak.proc is not None
        result["shutdown_exit"] = soak.proc.wait(timeout=120)
        result["leftovers_after_shutdown"] = len(soak.leftovers())
        # ... and neither does a kill -9 of the supervisor (the guardian ends the fleet).
        soak.start()
        soak.proc.kill()
        soak.proc.wait()
        with contextlib.suppress(TimeoutError):
            soak.until(lambda: not soak.leftovers(), 30, "the fleet gone after kill -9")
        result["leftovers_after_kill9"] = len(soak.leftovers())
    finally:
        soak.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between kills")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of storm")
    parser.add_argument("--policy", choices=["lenient", "default", "both"], default="lenient")
    parser.add_argument(
        "--default-duration", type=float, default=None, help="storm of the default-policy run"
    )
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()}")
    policies = ["lenient", "default"] if args.policy == "both" else [args.policy]
    for policy in policies:
        duration = args.duration
        if policy == "default" and args.default_duration is not None:
            duration = args.default_duration
        result = run(args.workers, args.interval, duration, policy)
        result["load_after"] = [round(x, 1) for x in os.getloadavg()]
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
