"""The fork server: starts Python module bots by fork from a warm interpreter.

Starting a Python worker with exec costs about 12 ms of CPU for the
interpreter alone, before the bot imports anything: 200 workers keep both
cores of a small host busy for over a second. Module bots (`module =
"pkg.mod:func"`) are instead forked from this process, which has already
started Python and imported asyncio and the runner: a fork costs a fraction
of a millisecond, and the pages stay shared copy-on-write.

    supervisor --SOCK_SEQPACKET--> fork server --fork--> intermediate --fork--> worker
                                                            writes the worker's pid and
                                                            start time to a pipe, exits

When the intermediate exits, the worker is adopted by the nearest living
subreaper among its ancestors: the supervisor. So it becomes the
supervisor's child and its exit reaches the supervisor's reaper like any
other; this process never waits for workers.

    request  JSON list of {"id", "target", "argv", "env", "cwd", "title", "signal",
             "timeout_s"}, with each worker's stdout and stderr write ends attached
             (SCM_RIGHTS, in order); one intermediate forks the whole batch
    reply    JSON list of {"id", "pid", "start_ticks"} or {"id", "error"}

The server is single-threaded (forking a threaded process is unsafe) and
imports nothing of the supervisor's loop. If its socket closes, the
supervisor is gone: it ends the process groups it started, as the guardian
would, and exits.
"""

from __future__ import annotations

import array
import contextlib
import gc
import io
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any, NoReturn

from supervisor.daemon.helpers.guardian import Group, end_groups
from supervisor.procfs import start_ticks

MAX_BATCH_BYTES = 1 << 20
_ADOPTION_WAIT_S = 5.0
MAX_BATCH = 100  # two fds each; SCM_RIGHTS carries at most 253 per message
_PRUNE_EVERY = 256


def launch() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start a fork server; returns it and our end of its socket.

    `supervisor run` calls this first thing, so the fork server warms up while
    the supervisor itself is still importing its loop.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with theirs:
        popen = subprocess.Popen(
            [sys.executable, "-m", "supervisor.daemon.helpers.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # ^C on the supervisor's terminal must not reach it
        )
    return popen, ours


def main() -> int:
    from supervisor.sdk import entry as runner  # noqa: F401, PLC0415  (imported once here; workers inherit it)

    sock = socket.socket(fileno=int(sys.argv[1]))
    os.chdir("/")  # never pin the supervisor's directory; each worker goes to its own cwd
    # Before any worker clears its environment: setproctitle needs the original one once.
    _set_title("supervisor: fork server")
    gc.freeze()  # what is imported now stays shared: workers' collections never touch it
    groups: dict[int, Group] = {}
    served = 0
    while True:
        try:
            msg, ancdata, _, _ = sock.recvmsg(MAX_BATCH_BYTES, socket.CMSG_SPACE(MAX_BATCH * 8))
        except InterruptedError:
            continue
        if not msg:
            break
        fds = _received_fds(ancdata)
        try:
            replies = _serve(json.loads(msg), fds, groups)
        except (ValueError, KeyError, TypeError, OSError) as e:
            replies = [{"id": i, "error": f"{type(e).__name__}: {e}"} for i in _ids_of(msg)]
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(replies).encode())
        served += len(replies)
        if served % _PRUNE_EVERY < len(replies):
            _prune(groups)
    end_groups(groups.values())
    return 0


def _serve(
    batch: list[dict[str, Any]], fds: list[int], groups: dict[int, Group]
) -> list[dict[str, Any]]:
    """Fork one intermediate for the batch; it forks each worker and reports them."""
    if len(fds) != 2 * len(batch):
        raise ValueError("expected a stdout and a stderr pipe per worker")
    r, w = os.pipe()
    try:
        middle = os.fork()
        if middle == 0:
            _intermediate(batch, fds, w)
        os.close(w)
        w = -1
        with os.fdopen(r, "rb", closefd=False) as f:  # until the intermediate is gone
            lines = f.read().splitlines()
        os.waitpid(middle, 0)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    started = dict(line.split(b" ", 1) for line in lines)
    replies: list[dict[str, Any]] = []
    for req in batch:
        pid_ticks = started.get(str(req["id"]).encode(), b"").split()
        if len(pid_ticks) != 2:
            replies.append({"id": req["id"], "error": "the worker could not be started"})
            continue
        pid, ticks = int(pid_ticks[0]), int(pid_ticks[1])
        groups[pid] = Group(pid, ticks, int(req["signal"]), float(req["timeout_s"]))
        replies.append({"id": req["id"], "pid": pid, "start_ticks": ticks})
    return replies


def _intermediate(batch: list[dict[str, Any]], fds: list[int], w: int) -> NoReturn:
    try:
        me = os.getpid()
        gate_r, gate_w = os.pipe()  # at end of file, this process is gone
        for n, req in enumerate(batch):
            pid = os.fork()
            if pid == 0:
                # Its own group at once: a stop sent to the group must never miss it.
                os.setpgid(0, 0)
                os.close(w)
                os.close(gate_w)
                _wait_adopted(gate_r, me)
                _become_worker(req, fds[2 * n : 2 * n + 2])
            with contextlib.suppress(OSError):  # set from both sides, as shells do
                os.setpgid(pid, pid)
            os.write(w, f"{req['id']} {pid} {start_ticks(pid) or 0}\n".encode())
    finally:
        os._exit(0)


def _wait_adopted(gate: int, intermediate: int) -> None:
    """Run the bot only once the supervisor is our parent, as it is for an exec'd worker."""
    os.read(gate, 1)  # end of file: the intermediate has exited
    os.close(gate)
    deadline = time.monotonic() + _ADOPTION_WAIT_S
    # Its files close a moment before it is unlinked from its children; wait out that moment.
    while os.getppid() == intermediate and time.monotonic() < deadline:
        time.sleep(0.0001)


def _become_worker(req: dict[str, Any], fds: list[int]) -> NoReturn:
    code = 1
    try:
        _set_up(req, fds)
        from supervisor.sdk import entry as runner  # noqa: PLC0415  (already imported by main)

        code = runner.run_target(req["target"])
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        import traceback  # noqa: PLC0415

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe must not change the exit code
                stream.flush()
        os._exit(code)


def _set_up(req: dict[str, Any], fds: list[int]) -> None:
    """Make this forked child look like `python -m supervisor.sdk.entry TARGET` started fresh."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.chdir(req["cwd"])
    if req.get("process"):
        from supervisor.config import process as procsettings  # noqa: PLC0415  (few bots need it)

        procsettings.apply(req["process"])
    env: dict[str, str] = req["env"]
    os.environ.clear()
    os.environ.update(env)
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[0:1] = [os.getcwd(), *extra]
    sys.argv = list(req["argv"])
    _reopen_stdio(bool(env.get("PYTHONUNBUFFERED")))
    _set_title(req["title"])


def _set_title(title: str) -> None:
    """What `ps` shows; without it every worker would show the fork server's command line."""
    try:
        import setproctitle  # noqa: PLC0415
    except ImportError:
        return
    setproctitle.setproctitle(title)


def _reopen_stdio(unbuffered: bool) -> None:
    """New stdout and stderr on fds 1 and 2, buffered as a fresh interpreter would."""
    out = io.FileIO(1, "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        out if unbuffered else io.BufferedWriter(out), write_through=unbuffered
    )
    err = io.BufferedWriter(io.FileIO(2, "w", closefd=False))
    sys.stderr = io.TextIOWrapper(err, errors="backslashreplace", line_buffering=True)
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


def _ids_of(msg: bytes) -> list[object]:
    try:
        return [req.get("id") for req in json.loads(msg)]
    except (ValueError, AttributeError, TypeError):
        return []


def _prune(groups: dict[int, Group]) -> None:
    """Forget the groups whose leader is gone (the supervisor saw those exit)."""
    for pgid, g in list(groups.items()):
        if start_ticks(pgid) != g.start_ticks:
            del groups[pgid]


if __name__ == "__main__":
    sys.exit(main())
