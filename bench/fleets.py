"""The fleets the benchmarks compare: ours, Circus and supervisord, each run as an operator
would run it, with one bot `w` of n identical workers."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from bench.harness import Fleet, children, wait_for, worker_argv
from supervisor import client

BASELINES = Path(__file__).resolve().parent / ".baselines"


class Ours(Fleet):
    name = "supervisor"

    def launch(self, n: int, kind: str) -> None:
        self.config = self.dir / "supervisor.toml"
        argv = ", ".join(f'"{a}"' for a in worker_argv(kind))
        self.config.write_text(
            f'[supervisor]\nrun_dir = "run"\nlog_format = "json"\n\n'
            f"[bots.w]\ncommand = [{argv}]\nworkers = {n}\n"
        )
        log = open(self.dir / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()
        # The guardian is started before the control socket is bound; it is no worker.
        wait_for((self.dir / "run" / "control").exists, 30, "the control socket")
        self.helpers = {p for p in children(self.pid) if b"guardian.py" in _cmdline(p)}

    def status_argv(self) -> list[str]:
        return [str(Path(sys.executable).with_name("supervisor")), "status", "-c", str(self.config)]

    def scale(self, n: int) -> bool:
        client.request(self.dir / "run", "scale", {"bot": "w", "count": n})
        return True

    def request_shutdown(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


FLEETS: dict[str, type[Fleet]] = {"supervisor": Ours}
