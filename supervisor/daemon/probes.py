"""Running one worker's probes: HTTP, TCP and exec checks on the supervisor's loop.

HTTP is a minimal HTTP/1.0 GET over `anyio.connect_tcp` (2xx and 3xx are
healthy); TCP is a connect; exec spawns a child like a worker (its own
process group, reaped by the central Reaper) with the worker's env and cwd,
killed at its timeout. Each probe runs one check at a time, and at most one
exec check per worker is in flight. The decisions are `policy.probe`'s.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.abc

from supervisor.config.probes import Check, ProbeSpec, split_address
from supervisor.daemon.process import Child, Reaper, signal_group
from supervisor.policy import probe
from supervisor.policy.probe import Kind

_OUTPUT_LINES = 5  # of an exec probe's output, kept for events and status
_PIPE_BYTES = 65536  # an exec probe writing more blocks, and times out
_HEAD_BYTES = 4096  # enough of an HTTP reply to read its status line


@dataclass
class ProbeView:
    """One probe's latest: its state machine, last result and how long the check took."""

    state: probe.State
    last_result: str = ""  # "success", "failure" or "" before the first check
    output: str = ""
    latency_ms: float | None = None

    def as_status(self) -> dict[str, object]:
        state = "healthy" if self.state.healthy else "unhealthy"
        return {
            "state": state if self.last_result or self.state.healthy else "pending",
            "last_result": self.last_result or None,
            "output": self.output,
            "latency_ms": self.latency_ms,
            "failures": self.state.failures,
        }


@dataclass(frozen=True)
class Where:
    """What a worker's exec probes run with, and the numbers its placeholders take."""

    slot: int
    port: int
    env: Mapping[str, str]
    cwd: Path
    reaper: Reaper


Changed = Callable[[ProbeSpec, ProbeView], None]


class WorkerProbes:
    """The probes of one live worker; `run` until cancelled (when the worker exits)."""

    def __init__(self, specs: list[ProbeSpec], where: Where, changed: Changed) -> None:
        self.specs = {s.kind: s for s in specs}
        self.views = {s.kind: ProbeView(probe.initial(s.kind)) for s in specs}
        self.sdk_ready = False  # the SDK said READY (with readiness = "sdk" both must agree)
        self._where = where
        self._changed = changed
        self._started = anyio.Event()
        self._exec_lock = anyio.Lock()
        self._scope = anyio.CancelScope()
        if Kind.STARTUP not in self.specs:
            self._started.set()

    @property
    def ready(self) -> bool:
        """The readiness probe's verdict (True if the worker has none)."""
        view = self.views.get(Kind.READINESS)
        return view is None or view.state.healthy

    def cancel(self) -> None:
        self._scope.cancel()

    async def run(self) -> None:
        with self._scope:
            async with anyio.create_task_group() as tg:
                for spec in self.specs.values():
                    tg.start_soon(self._loop, spec)

    async def _loop(self, spec: ProbeSpec) -> None:
        if spec.kind is not Kind.STARTUP:
            await self._started.wait()
        await anyio.sleep(probe.first_delay_s(spec.thresholds))
        target = spec.expand(self._where.slot, self._where.port)
        view = self.views[spec.kind]
        while True:
            began = time.monotonic()
            ok, output = await self._check(spec.check, target, spec.thresholds.timeout_s)
            took_s = time.monotonic() - began
            self._record(spec, view, ok, output, took_s)
            if probe.wants_restart(spec.kind, spec.thresholds, view.state):
                return  # the worker is being restarted; its next process gets fresh probes
            if spec.kind is Kind.STARTUP and view.state.passed_once:
                self._started.set()
                return  # a startup probe's work is done once it passes
            await anyio.sleep(max(0.0, spec.thresholds.interval_s - took_s))

    def _record(self, spec: ProbeSpec, view: ProbeView, ok: bool, output: str, s: float) -> None:
        before = view.state
        view.state = probe.observe(spec.thresholds, before, ok)
        view.last_result = "success" if ok else "failure"
        view.output = output
        view.latency_ms = round(s * 1000, 1)
        flipped = before.healthy != view.state.healthy or _edge(before, ok)
        if flipped or probe.wants_restart(spec.kind, spec.thresholds, view.state):
            self._changed(spec, view)

    async def _check(
        self, check: Check, target: tuple[str, ...], timeout_s: float
    ) -> tuple[bool, str]:
        if check is Check.EXEC:
            async with self._exec_lock:
                return await run_exec(target, self._where, timeout_s)
        if check is Check.HTTP:
            return await check_http(target[0], timeout_s)
        return await check_tcp(target[0], timeout_s)


def _edge(before: probe.State, ok: bool) -> bool:
    """The first failure of a run, or the first success after failures: worth an event."""
    return (not ok and before.failures == 0) or (ok and before.failures > 0)


async def check_tcp(address: str, timeout_s: float) -> tuple[bool, str]:
    """Healthy if a TCP connection opens within the timeout."""
    host, port = split_address(address)
    try:
        with anyio.fail_after(timeout_s):
            stream = await anyio.connect_tcp(host, port)
        await stream.aclose()
    except (OSError, TimeoutError) as e:
        return False, _reason(e, timeout_s)
    return True, "connected"


async def check_http(url: str, timeout_s: float) -> tuple[bool, str]:
    """Healthy if a GET of url answers 2xx or 3xx within the timeout."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\nUser-Agent: supervisor\r\n\r\n"
    try:
        with anyio.fail_after(timeout_s):
            async with await anyio.connect_tcp(parts.hostname or "", parts.port or 80) as s:
                await s.send(request.encode())
                status_line = await _status_line(s)
    except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError) as e:
        return False, _reason(e, timeout_s)
    fields = status_line.split(" ", 2)
    healthy = len(fields) > 1 and fields[1].isdigit() and 200 <= int(fields[1]) < 400
    return healthy, status_line


async def _status_line(stream: anyio.abc.ByteStream) -> str:
    head = b""
    while b"\n" not in head and len(head) < _HEAD_BYTES:
        head += await stream.receive()
    return head.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")


async def run_exec(argv: tuple[str, ...], where: Where, timeout_s: float) -> tuple[bool, str]:
    """Healthy if argv exits 0 within the timeout; killed (its group) if it overstays."""
    try:
        child = Child.spawn(argv, where.env, where.cwd, where.reaper)
    except OSError as e:
        return False, f"cannot run {argv[0]}: {e.strerror or e}"
    try:
        with anyio.move_on_after(timeout_s) as waited:
            await child.exited.wait()
    finally:
        if child.alive:
            signal_group(child.pgid, signal.SIGKILL)  # the reaper collects it
        output = _drain(child.stdout_fd) + _drain(child.stderr_fd)
    if waited.cancelled_caught:
        return False, f"timed out after {timeout_s:g}s"
    code = child.exit.code if child.exit is not None else None
    tail = output.decode("utf-8", "replace").strip().splitlines()[-_OUTPUT_LINES:]
    return code == 0, "\n".join(tail) or f"exit code {code}"


def _drain(fd: int) -> bytes:
    """What an exited (or killed) probe left in its pipe (up to the pipe's size), then close."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, _PIPE_BYTES)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _reason(error: BaseException, timeout_s: float) -> str:
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout_s:g}s"
    if isinstance(error, anyio.EndOfStream | anyio.BrokenResourceError):
        return "connection closed before a reply"
    return str(error) or type(error).__name__
