"""Probe benchmark: supervisor CPU with N workers HTTP-probed once a second, and
probe-to-restart latency.

    python bench/probes.py [--workers 200] [--seconds 10] [--runs 3]

Each worker is tests/bots/health.py (a stdlib HTTP server on PORT, no SDK) with a
liveness probe on /healthz every second. The supervisor's CPU share (user + system,
psutil cpu_times of its pid) is measured over a window once every worker is running,
then one worker's /healthz is made to fail and the time from that moment to the
worker_unhealthy event and to its new process is taken. Medians of the runs.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from tests.integration.harness import REPO, Supervisor, wait_until


def free_base_port(n: int) -> int:
    """A base port whose next n ports are free (checked by binding each)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + n < 65000 and all(_free(base + i) for i in range(n)):
            return base


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def config(n: int, fail_dir: Path) -> str:
    return f"""
[bots.web]
command = ["{sys.executable}", "-m", "tests.bots.health"]
cwd = "{REPO}"
workers = {n}
port = {free_base_port(n)}
env = {{ HEALTH_FAIL_FILE = "{fail_dir}/fail" }}

[bots.web.probes.startup]
tcp = "127.0.0.1:{{port}}"
interval_s = 0.2
failure_threshold = 1000

[bots.web.probes.liveness]
http = "http://127.0.0.1:{{port}}/healthz"
interval_s = 1
failure_threshold = 1
"""


def one_run(n: int, seconds: float) -> tuple[float, float, float]:
    """(CPU % of one core, s to worker_unhealthy, s to the new worker)."""
    sup = Supervisor()
    try:
        sup.configure(config(n, sup.dir))
        sup.start(timeout_s=180)
        sup.wait_running("web", n, timeout_s=300)
        proc = psutil.Process(sup.pid)
        before = sum(proc.cpu_times()[:2])
        time.sleep(seconds)  # the measuring window, not a wait for a condition
        cpu = 100 * (sum(proc.cpu_times()[:2]) - before) / seconds
        return (cpu, *restart_latency(sup))
    finally:
        sup.cleanup()


def restart_latency(sup: Supervisor) -> tuple[float, float]:
    """Every worker's /healthz fails from now: time to the first unhealthy event and new pid."""
    old = sup.pids("web")
    t0 = time.monotonic()
    (sup.dir / "fail").touch()
    wait_until(lambda: sup.events("worker_unhealthy"), 30, "worker_unhealthy")
    unhealthy_s = time.monotonic() - t0
    wait_until(lambda: any(p != old.get(s) for s, p in sup.pids("web").items()), 60, "a restart")
    return unhealthy_s, time.monotonic() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run(args.workers, args.seconds) for _ in range(args.runs)]
    cpu, unhealthy, restarted = (statistics.median(r[i] for r in runs) for i in range(3))
    print(f"{args.workers} workers, liveness HTTP probe every 1 s, {args.runs} runs (median)")
    print(f"  supervisor CPU:              {cpu:.2f} % of one core")
    print(f"  /healthz fails -> unhealthy: {unhealthy:.2f} s (interval 1 s, threshold 1)")
    print(f"  /healthz fails -> new pid:   {restarted:.2f} s")


if __name__ == "__main__":
    main()
