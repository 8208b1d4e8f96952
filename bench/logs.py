"""Log-file benchmark: what writing worker output to files costs a flooding fleet.

    python bench/logs.py [--lines 200000] [--workers 1 4] [--runs 3]

A real `supervisor run` (temporary directory) runs n workers that each print a
fixed number of 60-byte numbered lines as fast as they can, then "done", then exit
(restart = "never"). Three settings: log files off (output only becomes
`worker_output` events in the supervisor's own log, as before), on (text, 10 MiB
rotation), and on with gzip of rotated files. For each: lines per second from the
start of the flood until every worker has exited and its lines are on disk; the
supervisor's CPU per million lines (utime + stime of the process, loop and writer
threads); and `status` round trips through the control socket while the flood
runs (median and max), with the loop lag the supervisor itself reports. With
files on, every run is checked for loss: each worker's numbers must all be in its
files exactly once. Medians over --runs.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import percentile
from supervisor.cli import client, logread

_CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTINGS = {
    "off": "log_files = false",
    "text": 'log_files = true\nlog_max_bytes = "10MiB"',
    "gzip": 'log_files = true\nlog_max_bytes = "10MiB"\nlog_compress = true\nlog_backups = 100',
}
FLOOD = "import sys\nfor i in range({n}): print(f'line {{i:>10}} ' + 'x' * 38)\nprint('done')"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def run_once(setting: str, workers: int, lines: int) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="svlog-", dir="/tmp"))
    try:
        return _measure(directory, setting, workers, lines)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _measure(directory: Path, setting: str, workers: int, lines: int) -> dict[str, float]:
    gate = directory / "go"
    script = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.005)\n"
    script += FLOOD.format(n=lines)
    (directory / "supervisor.toml").write_text(
        f'[supervisor]\nrun_dir = "run"\nlog_format = "json"\n{SETTINGS[setting]}\n\n'
        f'[bots.flood]\ncommand = [{sys.executable!r}, "-c", {script!r}]\n'
        f'workers = {workers}\nrestart = "never"\nready_after_s = 0\n'
    )
    with open(directory / "supervisor.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "-c", "supervisor.toml"],
            cwd=directory, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    run_dir = directory / "run"
    try:
        status = _wait(lambda: _status(run_dir), "the supervisor")
        _wait(lambda: _status(run_dir)["bots"]["flood"]["running"] == workers, "workers")
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        gate.touch()
        latencies, lags = [], []
        while status["bots"]["flood"]["running"]:
            before = time.perf_counter()
            status = _status(run_dir)
            latencies.append(time.perf_counter() - before)
            lags.append(status["supervisor"]["loop_lag_s"])
            time.sleep(0.02)
        if setting != "off":
            _wait(lambda: all(_done(run_dir, s) for s in range(workers)), "lines on disk")
        seconds, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
        if setting != "off":
            for slot in range(workers):
                _check(run_dir / "logs" / "flood", slot, lines)
        client.request(run_dir, "shutdown", timeout_s=60)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    total = lines * workers
    return {
        "lines_per_s": total / seconds,
        "cpu_s_per_million": cpu / total * 1e6,
        "status_ms_median": statistics.median(latencies) * 1e3,
        "status_ms_max": max(latencies) * 1e3,
        "status_ms_p99": percentile(latencies, 0.99) * 1e3,
        "loop_lag_ms_max": max(lags) * 1e3,
    }


def _status(run_dir: Path) -> dict:  # type: ignore[type-arg]
    try:
        return client.request(run_dir, "status", timeout_s=10)  # type: ignore[no-any-return]
    except Exception:
        return {}


def _wait(predicate, what: str, timeout_s: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def _segments(directory: Path, slot: int) -> list[Path]:
    found = logread.list_segments(os.listdir(directory)).get(slot, [])
    return [directory / s.name for s in found]


def _read(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def _done(run_dir: Path, slot: int) -> bool:
    path = run_dir / "logs" / "flood" / f"{slot}.log"
    return path.exists() and _read(path).endswith(b" done\n")


def _check(directory: Path, slot: int, lines: int) -> None:
    numbers = [
        int(line.split()[4])
        for path in _segments(directory, slot)
        for line in _read(path).splitlines()
        if line.split(b" ", 4)[3] == b"line"
    ]
    if numbers != list(range(lines)):
        raise SystemExit(f"slot {slot}: {len(numbers)} lines, expected 0..{lines - 1} once each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200_000, help="per worker")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.lines} lines of 60 bytes per worker; medians of {args.runs} runs")
    header = ("workers", "files", "lines/s", "cpu s/M", "status ms med", "p99", "max", "lag ms")
    print("{:>7} {:>5} {:>10} {:>8} {:>13} {:>6} {:>6} {:>6}".format(*header))
    for workers in args.workers:
        for setting in SETTINGS:
            runs = [run_once(setting, workers, args.lines) for _ in range(args.runs)]
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"{workers:>7} {setting:>5} {m['lines_per_s']:>10.0f} "
                f"{m['cpu_s_per_million']:>8.2f} {m['status_ms_median']:>13.1f} "
                f"{m['status_ms_p99']:>6.1f} {m['status_ms_max']:>6.1f} "
                f"{m['loop_lag_ms_max']:>6.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
