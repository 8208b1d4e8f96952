"""A real `supervisor run` subprocess on a temporary config, for integration tests.

Every wait is bounded and polls for a condition; nothing sleeps a guessed
time. Temporary directories live directly under /tmp because unix socket
paths are limited to 107 bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

from supervisor.cli import client
from supervisor.daemon.helpers.guardian import Group, end_groups
from supervisor.errors import UnreachableError

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
# Events said once per worker: 2,000 of them would bury what the supervisor was doing.
_PER_WORKER = re.compile(r'"event": "worker_(spawned|exited|ready|output)"')


def wait_until(predicate: Callable[[], T], timeout_s: float = 10.0, what: str = "condition") -> T:
    """Poll predicate until it returns something truthy; fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """True if pid runs (a zombie counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Supervisor:
    """One supervisor under test, in its own temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sv-", dir="/tmp"))
        self.config_path = self.dir / "supervisor.toml"
        self.run_dir = self.dir / "run"
        self.log_path = self.dir / "supervisor.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._seen: dict[int, float] = {}  # pid -> create time, to end leftovers safely

    # ------------------------------------------------------------ set-up

    def configure(self, bots: str, shutdown_timeout_s: float = 20.0) -> Path:
        """Write supervisor.toml: a [supervisor] table of ours, then the given bots."""
        self.config_path.write_text(
            "[supervisor]\n"
            'run_dir = "run"\n'
            'log_format = "json"\n'
            'log_level = "debug"\n'
            f"shutdown_timeout_s = {shutdown_timeout_s}\n\n" + bots
        )
        return self.config_path

    def start(
        self,
        timeout_s: float = 15.0,
        env: dict[str, str] | None = None,
        wrap: list[str] | None = None,
    ) -> None:
        """Run it; `env` is added to ours, `wrap` goes before the command (e.g. unshare)."""
        log = open(self.log_path, "ab")  # noqa: SIM115  (the child owns it)
        self.proc = subprocess.Popen(
            [*(wrap or []), sys.executable, "-m", "supervisor", "run", "-c", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            env=os.environ | (env or {}),
        )
        log.close()
        wait_until(self._answers, timeout_s, "the control socket to answer")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"supervisor exited with {self.proc.returncode}:\n{self.log()}")
        try:
            self.request("ping", timeout_s=1.0)
        except Exception:
            return False
        return True

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # ------------------------------------------------------------ talking to it

    def request(self, cmd: str, timeout_s: float = 30.0, **args: Any) -> Any:
        try:
            return client.request(self.run_dir, cmd, args, timeout_s)
        except UnreachableError as e:
            if timeout_s < 10 or self.proc is None or self.proc.poll() is not None:
                raise  # a short poll (start's ping), or it is gone: nothing to look at
            raise AssertionError(f"{e}; where it was:\n{self.stacks()}") from e

    def stacks(self) -> str:
        """What it last said (but the per-worker lines), then its threads' and tasks' stacks
        (kill -QUIT, daemon/stacks.py), from its log."""
        assert self.proc is not None
        said = self.log()
        self.proc.send_signal(signal.SIGQUIT)
        with contextlib.suppress(AssertionError):  # a loop blocked for good prints threads only
            wait_until(lambda: "supervisor tasks (" in self.log()[len(said) :], 10.0, "task dump")
        lines = [line for line in said.splitlines() if not _PER_WORKER.search(line)]
        return "\n".join(["last said:", *lines[-40:], "stacks:", self.log()[len(said) :][-20_000:]])

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("status")
        for bot in result["bots"].values():
            for pid in (w["pid"] for w in bot["workers"] if w["pid"]):
                if pid not in self._seen:
                    with contextlib.suppress(psutil.Error):
                        self._seen[pid] = psutil.Process(pid).create_time()
        return result

    def bot(self, name: str) -> dict[str, Any]:
        bot: dict[str, Any] = self.status()["bots"][name]
        return bot

    def pids(self, name: str) -> dict[int, int]:
        """slot -> pid of each running worker of a bot."""
        return {w["slot"]: w["pid"] for w in self.bot(name)["workers"] if w["state"] == "running"}

    def wait_running(self, name: str, count: int, timeout_s: float = 15.0) -> dict[int, int]:
        def ready() -> dict[int, int] | None:
            b = self.bot(name)
            ok = b["state"] == "running" and b["running"] == count == b["desired"]
            return self.pids(name) if ok else None

        return wait_until(ready, timeout_s, f"{name} to run {count} workers")

    def cli(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """The real `supervisor` command, as an operator types it."""
        return subprocess.run(
            [sys.executable, "-m", "supervisor", *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=self.dir,
            check=False,
        )

    # ------------------------------------------------------------ its log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str | set[str]) -> list[dict[str, Any]]:
        """The log's events of that name (or of any of those names), in order."""
        names = {name} if isinstance(name, str) else name
        found = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") in names:
                    found.append(event)
        return found

    # ------------------------------------------------------------ ending it

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        """Leave the machine as we found it, whatever the test did."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()
        for pid, created in self._seen.items():
            with contextlib.suppress(psutil.Error, OSError):
                if psutil.Process(pid).create_time() == created:
                    os.killpg(pid, signal.SIGKILL)
        state = self.run_dir / "state.json"
        if state.exists():
            with contextlib.suppress(ValueError, TypeError):
                end_groups(Group(**g) for g in json.loads(state.read_text()).get("groups", []))
        # The guardian may still be finishing its work after a kill -9.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not self._leaked(), timeout_s=5.0, what="nothing left")
        leaked = self._leaked()
        for p in leaked:
            with contextlib.suppress(psutil.Error):
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not leaked, f"processes left behind: {[p.info for p in leaked]}"

    def _leaked(self) -> list[psutil.Process]:
        """Live processes whose working directory is ours: workers default to it."""
        found = []
        for p in psutil.process_iter(["pid", "cwd", "cmdline"]):
            cwd = p.info["cwd"] or ""
            if (cwd == str(self.dir) or cwd.startswith(f"{self.dir}/")) and pid_alive(p.pid):
                found.append(p)
        return found


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


def chromium(playwright: Any) -> Any:
    """Debian's chromium under Playwright (browser downloads are impossible here)."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
