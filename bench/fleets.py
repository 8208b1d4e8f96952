"""The fleets the benchmarks compare: ours, Circus and supervisord, each run as an operator
would run it, with one bot `w` of n identical workers."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from pathlib import Path

from bench.harness import REPO, Fleet, wait_for, worker_argv
from supervisor.cli import client
from supervisor.errors import UnreachableError

BASELINES = Path(__file__).resolve().parent / ".baselines"


class Ours(Fleet):
    """Ours, running the worker as a command (exec), like the baselines."""

    name = "supervisor"

    def bot_config(self, kind: str) -> str:
        argv = ", ".join(f'"{a}"' for a in worker_argv(kind))
        return f"command = [{argv}]"

    def extra_config(self) -> str:
        """More TOML after the bot's table (plugins, say)."""
        return ""

    def launch(self, n: int, kind: str) -> None:
        self.start(n, kind)
        # The guardian and the fork server are children too, but no workers.
        wait_for(self._answers, 30, "the control socket")
        helpers = client.request(self.dir / "run", "status")["supervisor"]["helpers"]
        self.helpers = {pid for pid in helpers.values() if pid}

    def start(self, n: int, kind: str) -> None:
        self.config = self.dir / "supervisor.toml"
        self.config.write_text(
            f'[supervisor]\nrun_dir = "run"\nlog_format = "json"\n\n'
            f"[bots.w]\n{self.bot_config(kind)}\nworkers = {n}\n{self.extra_config()}"
        )
        log = open(self.dir / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "run", "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()

    def _answers(self) -> bool:
        if not (self.dir / "run" / "control").exists():
            return False
        try:
            client.request(self.dir / "run", "ping", timeout_s=1.0)
        except UnreachableError:
            return False  # not bound yet, or bound but not yet listening
        return True

    def status_argv(self) -> list[str]:
        return [str(Path(sys.executable).with_name("supervisor")), "status", "-c", str(self.config)]

    def scale(self, n: int) -> bool:
        client.request(self.dir / "run", "scale", {"bot": "w", "count": n})
        return True

    def request_shutdown(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)


class OursForked(Ours):
    """Ours, running the same Python worker as a module bot: forked from the fork server."""

    name = "supervisor (module bot, fork server)"
    kinds = frozenset({"python", "ready"})

    def bot_config(self, kind: str) -> str:
        module = "bench.workers.ready:main" if kind == "ready" else "bench.workers.sleeper"
        return f'module = "{module}"\ncwd = "{REPO}"'


class OursPreloaded(OursForked):
    """Ours, the module bot with `preload = true`: forked from a zygote that imported it."""

    name = "supervisor (module bot, preload)"
    kinds = frozenset({"ready"})

    def bot_config(self, kind: str) -> str:
        return super().bot_config(kind) + "\npreload = true"


class Circus(Fleet):
    """Circus 0.19 from bench/.baselines/circus: circusd in the foreground, one watcher `w`.

    Settings, all else left at Circus's defaults:
    - endpoint / pubsub_endpoint: ipc sockets in self.dir instead of the default fixed TCP
      ports 5555/5556, so parallel runs cannot collide (statsd/stats stay off, the default).
    - check_delay: not set, so the default 5 s applies. It is also Circus's reaping period:
      Circus has no SIGCHLD handler, so a dead worker is noticed (and replaced) on this timer.
    - copy_env = true: Circus otherwise starts workers with an empty environment, and the
      benchmark's workers need BENCH_MARKER (circusd itself runs with self.env()).
    - workers' stdout/stderr: no streams configured (the default), so they inherit circusd's.
    """

    name = "circus"
    bin = BASELINES / "circus" / "bin"

    def launch(self, n: int, kind: str) -> None:
        argv = worker_argv(kind)
        self.endpoint = f"ipc://{self.dir / 'endpoint'}"
        self.config = self.dir / "circus.ini"
        self.config.write_text(
            "[circus]\n"
            f"endpoint = {self.endpoint}\n"
            f"pubsub_endpoint = ipc://{self.dir / 'pubsub'}\n"
            "\n"
            "[watcher:w]\n"
            f"cmd = {shlex.quote(argv[0])}\n"
            f"args = {shlex.join(argv[1:])}\n"
            f"numprocesses = {n}\n"
            "copy_env = true\n"
        )
        log = open(self.dir / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(self.bin / "circusd"), str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()

    def status_argv(self) -> list[str]:
        return [str(self.bin / "circusctl"), "--endpoint", self.endpoint, "status"]

    def scale(self, n: int) -> bool:
        # circusctl acknowledges at once (no --waiting); the spawning/stopping follows.
        subprocess.run(
            [*self.status_argv()[:-1], "set", "w", "numprocesses", str(n)],
            capture_output=True,
            check=True,
        )
        return True

    def request_shutdown(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)


class Supervisord(Fleet):
    """supervisord 4.3 from bench/.baselines/supervisord: `supervisord -n`, one program `w`.

    Settings, all else left at supervisord's defaults (startsecs=1, stopwaitsecs=10, child
    logs AUTO, ...):
    - [unix_http_server], [supervisorctl], [rpcinterface:supervisor]: what supervisorctl
      needs to talk to supervisord; the socket lives in self.dir.
    - [supervisord] nodaemon = true so it is our child; logfile, pidfile and childlogdir in
      self.dir so nothing is left behind and parallel runs do not collide.
    - numprocs = n with the process_name pattern numprocs requires.
    - autorestart = true (default "unexpected"): restart however a worker exits, as ours does.
    - workers inherit supervisord's environment (self.env()), the default.
    """

    name = "supervisord"
    bin = BASELINES / "supervisord" / "bin"

    def launch(self, n: int, kind: str) -> None:
        sock = self.dir / "supervisor.sock"
        self.config = self.dir / "supervisord.conf"
        self.config.write_text(
            "[unix_http_server]\n"
            f"file = {sock}\n"
            "\n"
            "[supervisord]\n"
            "nodaemon = true\n"
            f"logfile = {self.dir / 'supervisord.log'}\n"
            f"pidfile = {self.dir / 'supervisord.pid'}\n"
            f"childlogdir = {self.dir}\n"
            "\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            "\n"
            "[supervisorctl]\n"
            f"serverurl = unix://{sock}\n"
            "\n"
            "[program:w]\n"
            f"command = {shlex.join(worker_argv(kind))}\n"
            f"numprocs = {n}\n"
            "process_name = %(program_name)s_%(process_num)03d\n"
            "autorestart = true\n"
        )
        log = open(self.dir / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(self.bin / "supervisord"), "-c", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()

    def status_argv(self) -> list[str]:
        return [str(self.bin / "supervisorctl"), "-c", str(self.config), "status"]

    def scale(self, n: int) -> bool:
        return False  # numprocs is fixed at start; changing it means a reread/update of config

    def request_shutdown(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)


FLEETS: dict[str, type[Fleet]] = {
    "supervisor": Ours,
    "supervisor-fork": OursForked,
    "supervisor-preload": OursPreloaded,
}
# The baselines only when bench/baselines/install.sh has installed them.
if (Circus.bin / "circusd").exists():
    FLEETS["circus"] = Circus
if (Supervisord.bin / "supervisord").exists():
    FLEETS["supervisord"] = Supervisord
