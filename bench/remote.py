"""Remote control benchmark: `status` over CURVE (tcp on loopback) against the local ipc path.

    python bench/remote.py [--workers 20] [--calls 200] [--runs 3]

One supervisor with N sleeping workers and a remote endpoint; per run, `--calls`
requests of each kind, timed one by one in this process:

    local    cli/client.py: our own ZMTP client over ipc (what `supervisor status` uses)
    remote   cli/remote.py: pyzmq DEALER with CURVE, a new connection and handshake per
             call (what `supervisor --host NAME status` does)

and the whole CLI process (`python -m supervisor [--host h] status`), a few times,
since that is what an operator waits for. Prints p50/p90 per run and the median of runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from supervisor.cli import client, hosts, remote
from tests.integration.harness import Supervisor
from tests.integration.remote_kit import free_port, hosts_file, key_pair, remote_config


def timed(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cli-calls", type=int, default=10)
    args = parser.parse_args()
    keys_dir = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    server, alice = key_pair(keys_dir, "server"), key_pair(keys_dir, "alice")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    sup = Supervisor()
    try:
        sup.config_path.write_text(
            remote_config(endpoint, server[1], {"alice": (alice[0], "read")},
                          "remote_rate_per_s = 100000\nremote_burst = 100000")
            + f'[bots.s]\ncommand = ["sleep", "1000"]\nworkers = {args.workers}\n'
        )  # fmt: skip
        sup.start()
        sup.wait_running("s", args.workers, timeout_s=60)
        host = hosts.Host("h", endpoint, server[0], alice[1])
        path = hosts_file(keys_dir / "hosts.toml", {"h": (endpoint, server[0], alice[1])})
        run(args, sup, host, path)
    finally:
        sup.cleanup()


def run(args: argparse.Namespace, sup: Supervisor, host: hosts.Host, hosts_path: Path) -> None:
    kinds: dict[str, Callable[[], object]] = {
        "local": lambda: client.request(sup.run_dir, "status", {}, 10.0),
        "remote": lambda: remote.request(host, "status", {}, 10.0),
    }
    env = os.environ | {hosts.ENV_VAR: str(hosts_path)}
    base = [sys.executable, "-m", "supervisor"]
    clis = {
        "local cli": [*base, "status", "-c", str(sup.config_path)],
        "remote cli": [*base, "--host", "h", "status"],
    }
    p50s: dict[str, list[float]] = {k: [] for k in [*kinds, *clis]}
    print(f"status of {args.workers} workers, {args.calls} calls per kind per run, "
          f"{args.cli_calls} CLI processes; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    for r in range(args.runs):
        for name, call in kinds.items():
            ms = timed(call, args.calls)
            p50s[name].append(statistics.median(ms))
            print(f"run {r + 1} {name:<11} p50 {statistics.median(ms):7.2f} ms  "
                  f"p90 {quantile(ms, 0.9):7.2f} ms")  # fmt: skip
        for name, argv in clis.items():
            ms = timed(lambda a=argv: subprocess.run(a, env=env, check=True, capture_output=True),  # type: ignore[misc]
                       args.cli_calls)  # fmt: skip
            p50s[name].append(statistics.median(ms))
            print(f"run {r + 1} {name:<11} p50 {statistics.median(ms):7.2f} ms")
    print("median of runs (p50):")
    for name, values in p50s.items():
        print(f"  {name:<11} {statistics.median(values):7.2f} ms")


if __name__ == "__main__":
    main()
