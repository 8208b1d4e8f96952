"""Worker OS processes: spawn, signal, stop with a timeout, and the central reaper.

This is the only module that creates processes, sends them signals or
waits for them. Every child is started in a process group of its own (so
a stop reaches the grandchildren it spawned), and every exit is collected
by one `Reaper` that the loop runs on SIGCHLD: `waitpid(-1, WNOHANG)` until
nothing is left, then a dispatch by pid. There is no timer and no thread
per child. Because nothing else may call `waitpid`, children are started
with `subprocess.Popen`, whose own `poll`/`wait` are never called (asyncio's
subprocess API would watch each child with a thread of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import anyio
import structlog

from supervisor.config.process import ProcessSettings
from supervisor.policy.restart import Exit
from supervisor.procfs import start_ticks, stat_fields

log = structlog.get_logger("supervisor.process")

_PR_SET_CHILD_SUBREAPER = 36
_GROUP_POLL_S = 0.02
_MIN_CPU_WINDOW_S = 0.5
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_KILL_WAIT_S = 5.0  # SIGKILL cannot be caught; this only bounds a process stuck in the kernel


def become_subreaper() -> bool:
    """Adopt orphaned descendants, so a worker's own children never become zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a whole process group; False if no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        log.warning("signal_refused", pgid=pgid, signal=signal.Signals(sig).name)
        return False
    return True


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


class Child:
    """One spawned worker process, the leader of its own process group."""

    def __init__(
        self,
        pid: int,
        stdout_fd: int,
        stderr_fd: int,
        reaper: Reaper,
        *,
        ticks: int | None = None,
        popen: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.pid = self.pgid = pid
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.started_at = time.monotonic()
        self.start_ticks = ticks if ticks is not None else start_ticks(pid)
        self.exit: Exit | None = None
        self.exited = anyio.Event()
        self.on_exit: Callable[[Exit], None] | None = None
        self._popen = popen
        self._last_cpu: tuple[float, float] = (0.0, self.started_at)  # (cpu seconds, when)
        self._cpu_percent: float | None = None
        reaper.watch(pid, self._mark_exited)

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        reaper: Reaper,
        settings: ProcessSettings | None = None,
    ) -> Child:
        """Start argv in a new process group, stdout and stderr on pipes of ours.

        Raises OSError if the program cannot be started (not found, not executable).
        """
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                process_group=0,
                close_fds=True,
                **(settings.popen_kwargs() if settings is not None else {}),
            )
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        return cls(popen.pid, out_r, err_r, reaper, popen=popen)

    @property
    def alive(self) -> bool:
        return self.exit is None

    def uptime_s(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started_at

    def rss_bytes(self) -> int:
        """Resident memory now (0 if gone); unlike sample(), no CPU bookkeeping."""
        fields = stat_fields(self.pid) if self.alive else None
        return int(fields[21]) * _PAGE_BYTES if fields is not None else 0

    def sample(self) -> tuple[float, int]:
        """(CPU percent since the previous sample, or since start; RSS bytes).

        One read of /proc/PID/stat: a status of hundreds of workers stays cheap.
        """
        fields = stat_fields(self.pid) if self.alive else None
        if fields is None:
            return 0.0, 0
        cpu, now = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS, time.monotonic()
        rss = int(fields[21]) * _PAGE_BYTES
        last_cpu, last_at = self._last_cpu
        if now - last_at >= _MIN_CPU_WINDOW_S or self._cpu_percent is None:
            # CPU times tick every 10 ms: a shorter window would read as 0% or 100%.
            self._cpu_percent = 100.0 * (cpu - last_cpu) / max(now - last_at, 1e-3)
            self._last_cpu = (cpu, now)
        return self._cpu_percent, int(rss)

    def _mark_exited(self, returncode: int) -> None:
        """The reaper collected it: record the status, then tell whoever listens."""
        self.exit = Exit.from_returncode(returncode)
        if self._popen is not None:
            self._popen.returncode = returncode  # so Popen never waits for it itself
        self.exited.set()
        if self.on_exit is not None:
            self.on_exit(self.exit)

    def signal(self, sig: int) -> bool:
        """Signal the worker's whole process group."""
        return self.alive and signal_group(self.pgid, sig)

    async def stop(self, sig: int, timeout_s: float) -> None:
        """Signal the group, wait up to timeout_s for it to empty, then SIGKILL it."""
        deadline = time.monotonic() + timeout_s
        if self.alive:
            signal_group(self.pgid, sig)
        with anyio.move_on_after(timeout_s):
            await self.exited.wait()
        await wait_group_gone(self.pgid, deadline)
        if self.alive or group_alive(self.pgid):
            log.warning("worker_killed", pid=self.pid, after_s=timeout_s)
            signal_group(self.pgid, signal.SIGKILL)
        with anyio.move_on_after(_KILL_WAIT_S):
            await self.exited.wait()


async def wait_group_gone(pgid: int, deadline: float) -> bool:
    """Poll until no process is left in the group or the deadline passes.

    Polled, not event-driven: members of the group need not be our children.
    """
    while group_alive(pgid):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await anyio.sleep(min(_GROUP_POLL_S, remaining))
    return True


async def end_group(pgid: int, sig: int, timeout_s: float) -> None:
    """End what is left of a group whose leader is gone: sig, then SIGKILL at the deadline."""
    if not signal_group(pgid, sig):
        return
    if not await wait_group_gone(pgid, time.monotonic() + timeout_s):
        signal_group(pgid, signal.SIGKILL)


class Reaper:
    """Collects every exited child with waitpid(-1) and dispatches it by pid.

    Workers forked by the fork server become our children by adoption, and
    one may exit (and be reaped) before we know its pid. While such spawns
    are in flight, exits of unknown pids are kept, and `watch` delivers them.
    """

    def __init__(self) -> None:
        self._watched: dict[int, Callable[[int], None]] = {}
        self._adoptions = 0
        self._unclaimed: dict[int, int] = {}
        self.orphans_reaped = 0

    def watch(self, pid: int, on_exit: Callable[[int], None]) -> None:
        """Call on_exit(returncode) when pid exits; returncode < 0 means that signal."""
        returncode = self._unclaimed.pop(pid, None)
        if returncode is None:
            self._watched[pid] = on_exit
        else:
            asyncio.get_running_loop().call_soon(on_exit, returncode)

    def expect_adoption(self) -> None:
        self._adoptions += 1

    def adoption_done(self) -> None:
        self._adoptions -= 1
        if self._adoptions == 0:
            self._unclaimed.clear()  # orphans of workers, nothing of ours

    def reap(self) -> None:
        """Run on SIGCHLD (signals merge, so loop until nothing is left)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            returncode = os.waitstatus_to_exitcode(status)
            on_exit = self._watched.pop(pid, None)
            if on_exit is not None:
                on_exit(returncode)
            elif self._adoptions:
                self._unclaimed[pid] = returncode
            else:
                self.orphans_reaped += 1
                log.debug("orphan_reaped", pid=pid, exit_code=returncode)


async def end_strays(exclude: set[int], timeout_s: float) -> int:
    """End every direct child not in `exclude`: orphans we adopted as subreaper.

    SIGTERM, then SIGKILL after timeout_s; the reaper collects them. Returns how many.
    """
    strays = [pid for pid in direct_children() if pid not in exclude]
    for pid in strays:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    # Polled: the reaper collects them, but nothing signals "all gone" for a set of pids.
    while time.monotonic() < deadline and any(_running(p) for p in strays):  # noqa: ASYNC110
        await anyio.sleep(_GROUP_POLL_S)
    for pid in strays:
        if _running(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return len(strays)


def direct_children() -> set[int]:
    """Our live children, whichever of our threads they were reparented to."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as f:
            found.update(int(p) for p in f.read().split())
    return found


def _running(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != b"Z"
