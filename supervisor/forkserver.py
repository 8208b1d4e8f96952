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

    request  JSON {"id", "target", "argv", "env", "cwd", "title", "signal", "timeout_s"},
             with the worker's stdout and stderr write ends attached (SCM_RIGHTS)
    reply    JSON {"id", "pid", "start_ticks"} or {"id", "error"}

The server is single-threaded (forking a threaded process is unsafe) and
imports nothing of the supervisor's loop. If its socket closes, the
supervisor is gone: it ends the process groups it started, as the guardian
would, and exits.
"""

from __future__ import annotations

import array
import contextlib
import io
import json
import os
import socket
import sys
import traceback
from typing import Any, NoReturn

from supervisor import runner
from supervisor.guardian import Group, end_groups, start_ticks

MAX_REQUEST_BYTES = 1 << 20
_FDS_PER_REQUEST = 2
_PRUNE_EVERY = 256


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))
    groups: dict[int, Group] = {}
    served = 0
    while True:
        try:
            msg, ancdata, _, _ = sock.recvmsg(
                MAX_REQUEST_BYTES, socket.CMSG_SPACE(_FDS_PER_REQUEST * 4)
            )
        except InterruptedError:
            continue
        if not msg:
            break
        fds = _received_fds(ancdata)
        try:
            reply = _serve(json.loads(msg), fds, groups)
        except (ValueError, KeyError, TypeError, OSError) as e:
            reply = {"id": _id_of(msg), "error": f"{type(e).__name__}: {e}"}
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(reply).encode())
        served += 1
        if served % _PRUNE_EVERY == 0:
            _prune(groups)
    end_groups(groups.values())
    return 0


def _serve(req: dict[str, Any], fds: list[int], groups: dict[int, Group]) -> dict[str, Any]:
    if len(fds) != _FDS_PER_REQUEST:
        raise ValueError("expected the stdout and stderr pipes")
    r, w = os.pipe()
    try:
        middle = os.fork()
        if middle == 0:
            _intermediate(req, fds, w)
        os.close(w)
        w = -1
        words = os.read(r, 64).split()  # one short write, or end of file if it failed
        os.waitpid(middle, 0)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if len(words) != 2:
        raise OSError("the worker could not be started")
    pid, ticks = int(words[0]), int(words[1])
    groups[pid] = Group(pid, ticks, int(req["signal"]), float(req["timeout_s"]))
    return {"id": req["id"], "pid": pid, "start_ticks": ticks}


def _intermediate(req: dict[str, Any], fds: list[int], w: int) -> NoReturn:
    try:
        pid = os.fork()
        if pid == 0:
            os.close(w)
            _become_worker(req, fds)
        os.write(w, f"{pid} {start_ticks(pid) or 0}".encode())
    finally:
        os._exit(0)


def _become_worker(req: dict[str, Any], fds: list[int]) -> NoReturn:
    code = 1
    try:
        _set_up(req, fds)
        code = runner.run_target(req["target"])
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed pipe must not change the exit code
                stream.flush()
        os._exit(code)


def _set_up(req: dict[str, Any], fds: list[int]) -> None:
    """Make this forked child look like `python -m supervisor.runner TARGET` started fresh."""
    os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.chdir(req["cwd"])
    env: dict[str, str] = req["env"]
    os.environ.clear()
    os.environ.update(env)
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[0:1] = [os.getcwd(), *extra]
    sys.argv = list(req["argv"])
    _reopen_stdio(bool(env.get("PYTHONUNBUFFERED")))
    try:
        import setproctitle  # noqa: PLC0415

        setproctitle.setproctitle(req["title"])
    except ImportError:
        pass


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


def _id_of(msg: bytes) -> object:
    try:
        return json.loads(msg).get("id")
    except (ValueError, AttributeError):
        return None


def _prune(groups: dict[int, Group]) -> None:
    """Forget the groups whose leader is gone (the supervisor saw those exit)."""
    for pgid, g in list(groups.items()):
        if start_ticks(pgid) != g.start_ticks:
            del groups[pgid]


if __name__ == "__main__":
    sys.exit(main())
