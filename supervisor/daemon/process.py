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
import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import structlog

from supervisor.config import process as procsettings
from supervisor.config.process import ProcessSettings
from supervisor.daemon.helpers.guardian import enter_cgroups
from supervisor.policy.restart import Exit
from supervisor.procfs import start_ticks, stat_fields

log = structlog.get_logger("supervisor.process")

_PR_SET_CHILD_SUBREAPER = 36
_GROUP_POLL_S = 0.02
_MIN_CPU_WINDOW_S = 0.5
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
FD_RESERVE = 64  # kept free for the control socket, state saves and log files
_FDS_PER_SPAWN = 4  # two pipes while spawning; two stay open per worker
_RECOUNT_EVERY = 64  # spawns between counts of /proc/self/fd while far from the limit
_fd_estimate = [0, _RECOUNT_EVERY]  # [fds at the last count, spawns since]
_KILL_WAIT_S = 5.0  # SIGKILL cannot be caught; this only bounds a process stuck in the kernel
# A debug hook for tests: the modules loaded when the first worker is spawned, one a line,
# are written to this file (taken out of the environment the workers copy).
_MODULES_AT_SPAWN = list(filter(None, [os.environ.pop("SUPERVISOR_DEBUG_MODULES_AT_SPAWN", "")]))


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
        self.cpu_since = self.started_at  # when the window of the last CPU percent began
        reaper.watch(pid, self._mark_exited)

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        reaper: Reaper,
        settings: ProcessSettings | None = None,
        *,
        cgroup: Sequence[str] = (),
    ) -> Child:
        """Start argv in a new process group, stdout and stderr on pipes of ours; with
        `cgroup` (cgroup.procs files), in that group before it execs.

        Raises OSError if the program cannot be started (not found, not executable), or if
        it would leave fewer than FD_RESERVE descriptors free (see fd_headroom_error).
        """
        if problem := fd_headroom_error():
            raise problem
        if _MODULES_AT_SPAWN:  # the first spawn only
            _write_modules(_MODULES_AT_SPAWN.pop())
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
                **_child_setup(settings, cgroup),
            )
        except subprocess.SubprocessError as e:  # preexec_fn failed (joining its cgroup)
            os.close(out_r)
            os.close(err_r)
            raise OSError(f"setting up the worker failed: {e}") from e
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
            self._last_cpu, self.cpu_since = (cpu, now), last_at
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


def _write_modules(path: str) -> None:
    import sys  # noqa: PLC0415  (a debug hook's; stdlib, loaded already)

    Path(path).write_text("".join(f"{name}\n" for name in sorted(sys.modules)))


def _child_setup(settings: ProcessSettings | None, cgroup: Sequence[str]) -> dict[str, Any]:
    """Popen's user, group, umask and limits; with a cgroup, all in preexec_fn: the pid is
    written into the group first, while the child may still write there as we can."""
    if not cgroup:
        return settings.popen_kwargs() if settings is not None else {}
    request = settings.as_request() if settings is not None else {}
    files = tuple(cgroup)

    def enter_then_apply() -> None:
        enter_cgroups(files)
        procsettings.apply(request)

    return {"preexec_fn": enter_then_apply}


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


def fd_headroom_error() -> OSError | None:
    """EMFILE before it happens: a spawn that would leave fewer than FD_RESERVE descriptors
    free is refused, so the spawns fail one by one (and are retried with backoff) while the
    control socket can still accept a connection and state.json can still be written. Without
    it, a scale-up past RLIMIT_NOFILE took the last descriptors and `supervisor status`
    could no longer connect. /proc/self/fd is counted every _RECOUNT_EVERY spawns, and at
    each spawn once near the limit (4,000 fds take milliseconds to list on a busy machine)."""
    import resource  # noqa: PLC0415  (stdlib, already loaded by subprocess)

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft > (1 << 20):
        return None
    counted, since = _fd_estimate
    if since < _RECOUNT_EVERY and counted + (since + 1) * _FDS_PER_SPAWN + 2 * FD_RESERVE <= soft:
        _fd_estimate[1] += 1  # far from the limit: counting 4,000 fds costs milliseconds
        return None
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError as e:  # EMFILE itself: no fd even to list them
        return e
    _fd_estimate[:] = [used, 1]
    if used + _FDS_PER_SPAWN + FD_RESERVE > soft:
        return OSError(
            errno.EMFILE,
            f"{used} of {soft} file descriptors in use; {FD_RESERVE} are kept free for the "
            "control socket (raise RLIMIT_NOFILE, e.g. LimitNOFILE= under systemd)",
        )
    return None
