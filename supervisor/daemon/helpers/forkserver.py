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
             "timeout_s", "cgroup"}, with each worker's stdout and stderr write ends attached
             (SCM_RIGHTS, in order); one intermediate forks the whole batch
             and, for a `preload = true` bot, "preload": {"bot", "key", "module", "cwd",
             "env", "process"}: those are forked by the bot's zygote (zygote.py)
    reply    JSON list of {"id", "pid", "start_ticks"} or {"id", "error"}
    notice   JSON list of one {"notice": "zygote_started" | "zygote_exited" | ..., "level",
             "bot", ...}, sent whenever a zygote starts, fails, is replaced or dies

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
import select
import socket
import subprocess
import sys
import time
from typing import Any, NoReturn

from supervisor.daemon.helpers import zygote
from supervisor.daemon.helpers.guardian import Group, end_groups, enter_cgroups
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
    set_title("supervisor: fork server")
    gc.freeze()  # what is imported now stays shared: workers' collections never touch it
    server = _Server(sock)
    while server.serve_once():
        pass
    server.close()
    return 0


class _Server:
    """The fork server's state: the groups it started and the bots' zygotes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.groups: dict[int, Group] = {}
        self.zygotes: dict[str, zygote.Zygote] = {}
        self.young_deaths: dict[str, int] = {}  # bot -> zygotes in a row that died young
        self.served = 0

    def serve_once(self) -> bool:
        """Serve one request, or notice a zygote's death; False once the supervisor is gone."""
        by_fd = {z.sock.fileno(): z for z in self.zygotes.values()}
        own = self.sock.fileno()
        readable, _, _ = select.select([own, *by_fd], [], [])
        for fd in readable:
            if fd in by_fd:
                self._zygote_exited(by_fd[fd])
        if own not in readable:
            return True
        try:
            msg, ancdata, _, _ = self.sock.recvmsg(
                MAX_BATCH_BYTES, socket.CMSG_SPACE(MAX_BATCH * 8)
            )
        except InterruptedError:
            return True
        if not msg:
            return False
        fds = received_fds(ancdata)
        try:
            replies = self._serve(json.loads(msg), fds)
        except (ValueError, KeyError, TypeError, OSError) as e:
            replies = zygote.error_replies(msg, e)
        finally:
            for fd in fds:
                os.close(fd)
        self._send(replies)
        self.served += len(replies)
        if self.served % _PRUNE_EVERY < len(replies):
            _prune(self.groups)
        return True

    def _serve(self, batch: list[dict[str, Any]], fds: list[int]) -> list[dict[str, Any]]:
        """Fork the plain requests here and each preloaded bot's in its zygote."""
        if len(fds) != 2 * len(batch):
            raise ValueError("expected a stdout and a stderr pipe per worker")
        parts: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
        for n, req in enumerate(batch):
            part = parts.setdefault(_bot_of(req), ([], []))
            part[0].append(req)
            part[1].extend(fds[2 * n : 2 * n + 2])
        replies: list[dict[str, Any]] = []
        for bot, (reqs, req_fds) in parts.items():
            replies += self._preloaded(reqs, req_fds) if bot else fork_batch(reqs, req_fds)
        by_id = {str(req["id"]): req for req in batch}
        for reply in replies:
            if (asked := by_id.get(str(reply.get("id")))) is not None and "pid" in reply:
                sig, timeout_s = int(asked["signal"]), float(asked["timeout_s"])
                g = Group(reply["pid"], reply["start_ticks"], sig, timeout_s)
                self.groups[g.pgid] = g
        return replies

    def _preloaded(self, reqs: list[dict[str, Any]], fds: list[int]) -> list[dict[str, Any]]:
        spec = reqs[0]["preload"]
        z = self.zygotes.get(spec["bot"])
        if z is not None and (z.spec["key"] != spec["key"] or z.stale):
            del self.zygotes[spec["bot"]]
            z.sock.close()
            zygote.end(z.pid)
            self._notice("zygote_replaced", bot=spec["bot"], pid=z.pid)
            z = None
        if z is None:
            started = self._start_zygote(spec)
            if isinstance(started, str):
                return [{"id": r["id"], "error": started} for r in reqs]
            z = started
        try:
            return zygote.forward(z, [_plain(r) for r in reqs], fds, MAX_BATCH_BYTES)
        except OSError as e:
            self._zygote_exited(z, restart=False)
            return [{"id": r["id"], "error": f"zygote: {e}"} for r in reqs]

    def _start_zygote(self, spec: dict[str, Any]) -> zygote.Zygote | str:
        others = [self.sock.fileno(), *(z.sock.fileno() for z in self.zygotes.values())]
        forker = zygote.Forker(fork_batch, received_fds, set_title, MAX_BATCH_BYTES, 2 * MAX_BATCH)
        started = zygote.start(spec, others, forker)
        if isinstance(started, str):
            self._notice("zygote_failed", bot=spec["bot"], error=started)
        else:
            self.zygotes[spec["bot"]] = started
            self._notice("zygote_started", bot=spec["bot"], pid=started.pid, level="info")
        return started

    def _zygote_exited(self, z: zygote.Zygote, *, restart: bool = True) -> None:
        """Reap it, say so, and start another at once; after a second death in a row soon
        after its start, only when the next worker is asked for (no busy loop)."""
        if self.zygotes.get(z.spec["bot"]) is z:
            del self.zygotes[z.spec["bot"]]
        z.sock.close()
        code = zygote.end(z.pid)
        self._notice("zygote_exited", bot=z.spec["bot"], pid=z.pid, exit_code=code)
        bot = z.spec["bot"]
        self.young_deaths[bot] = 0 if z.lived_long else self.young_deaths.get(bot, 0) + 1
        if restart and self.young_deaths[bot] <= 1:
            self._start_zygote(z.spec)

    def _notice(self, event: str, level: str = "warning", **fields: Any) -> None:
        """An event for the supervisor's log and event stream (a reply without an id)."""
        self._send([{"notice": event, "level": level, **fields}])

    def _send(self, replies: list[dict[str, Any]]) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: the loop sees it next
            self.sock.send(json.dumps(replies).encode())

    def close(self) -> None:
        for z in list(self.zygotes.values()):
            zygote.end(z.pid)
        end_groups(self.groups.values())


def _bot_of(req: dict[str, Any]) -> str:
    preload = req.get("preload")
    return str(preload["bot"]) if isinstance(preload, dict) else ""


def _plain(req: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in req.items() if k != "preload"}


def fork_batch(batch: list[dict[str, Any]], fds: list[int]) -> list[dict[str, Any]]:
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
        replies.append(
            {"id": req["id"], "pid": int(pid_ticks[0]), "start_ticks": int(pid_ticks[1])}
        )
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
    enter_cgroups(req.get("cgroup") or ())  # first: before the user changes, before bot code
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
    set_title(req["title"])


def set_title(title: str) -> None:
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


def received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


def _prune(groups: dict[int, Group]) -> None:
    """Forget the groups whose leader is gone (the supervisor saw those exit)."""
    for pgid, g in list(groups.items()):
        if start_ticks(pgid) != g.start_ticks:
            del groups[pgid]


if __name__ == "__main__":
    sys.exit(main())
