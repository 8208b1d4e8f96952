"""Preloaded zygotes: one per `preload = true` bot, forked from the fork server.

A zygote imports its bot's module once, then forks that bot's workers, so a worker starts
with its imports done (gunicorn's --preload, uWSGI's fork server):

    fork server --fork--> zygote (imports pkg.mod) --fork--> intermediate --fork--> worker

The fork server forwards a bot's batch of spawn requests (forkserver.py's format, with the
same stdout/stderr fds) over a SOCK_SEQPACKET pair and relays the replies; the zygote forks
them exactly as the fork server does (forkserver.fork_batch), so a worker gets the same
set-up: its cgroup first, then stdio, cwd, rlimits and user, env, argv, title.

    hello   zygote -> fork server, once after the import:
            {"ok": true, "files": {path: mtime_ns}}  or  {"error": "why"} and it exits

Fork safety, checked after the import (a failed check is the hello's error): the zygote is
single-threaded (a fork copies only the calling thread, so a thread the module started
would be missing in every worker, holding whatever lock it held) and holds no socket but
its own (every worker would share one connection). A zygote is replaced when its spec (a
hash of module, cwd, env and user) changes or when one of the bot's own source files it
imported has changed on disk, so a reload or restart after a deploy runs the new code.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

MAX_HELLO_BYTES = 1 << 20
_HELLO_TIMEOUT_S = 60.0  # a module may take long to import; not forever
_EAGER_RESTART_AFTER_S = 1.0  # one that dies younger is started again only when asked


@dataclass(frozen=True)
class Forker:
    """What the zygote borrows from the fork server (passed in: no import cycle)."""

    fork_batch: Callable[[list[dict[str, Any]], list[int]], list[dict[str, Any]]]
    received_fds: Callable[[list[tuple[int, int, bytes]]], list[int]]
    set_title: Callable[[str], None]
    max_batch_bytes: int
    max_fds: int


@dataclass
class Zygote:
    """The fork server's handle on one bot's zygote."""

    spec: dict[str, Any]  # {"bot", "key", "module", "cwd", "env", "process"}
    pid: int
    sock: socket.socket
    files: dict[str, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def stale(self) -> bool:
        """One of the bot's own source files changed since the import."""
        for path, mtime_ns in self.files.items():
            try:
                if os.stat(path).st_mtime_ns != mtime_ns:
                    return True
            except OSError:
                return True
        return False

    @property
    def lived_long(self) -> bool:
        return time.monotonic() - self.started_at >= _EAGER_RESTART_AFTER_S


def start(spec: dict[str, Any], close: Sequence[int], forker: Forker) -> Zygote | str:
    """Fork a zygote for `spec` and wait for its hello; the Zygote, or why it failed.

    `close`: our descriptors the zygote must not keep (the supervisor's socket, others').
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        ours.close()
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        _serve(spec, theirs, forker)
    theirs.close()
    ours.settimeout(_HELLO_TIMEOUT_S)
    try:
        hello = json.loads(ours.recv(MAX_HELLO_BYTES) or b"{}")
    except (OSError, ValueError) as e:
        hello = {"error": f"no hello from the zygote: {type(e).__name__}: {e}"}
    ours.settimeout(None)
    if not hello.get("ok"):
        ours.close()
        end(pid)
        return str(hello.get("error") or "the zygote exited during its import")
    return Zygote(spec, pid, ours, dict(hello.get("files") or {}))


def end(pid: int) -> int:
    """Kill a zygote and reap it (its workers are in groups of their own: untouched)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return reap(pid, block=True)


def reap(pid: int, *, block: bool) -> int:
    """Its exit code (negative: the signal), or 0 if it is gone already / still running."""
    try:
        got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return 0
    return os.waitstatus_to_exitcode(status) if got else 0


def forward(
    z: Zygote, batch: list[dict[str, Any]], fds: list[int], max_bytes: int
) -> list[dict[str, Any]]:
    """Have the zygote fork the batch; its replies. OSError if it died meanwhile."""
    import array  # noqa: PLC0415  (stdlib, loaded by the fork server already)

    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
    z.sock.sendmsg([json.dumps(batch).encode()], rights)
    data = z.sock.recv(max_bytes)
    if not data:
        raise OSError("the zygote exited")
    replies: list[dict[str, Any]] = json.loads(data)
    return replies


# ---------------------------------------------------------------- in the zygote


def _serve(spec: dict[str, Any], sock: socket.socket, forker: Forker) -> NoReturn:
    try:
        problem = _preload(spec, sock.fileno(), forker.set_title)
        if problem:
            sock.send(json.dumps({"error": problem}).encode())
            os._exit(1)
        gc.freeze()  # the imported objects stay shared with every worker
        sock.send(json.dumps({"ok": True, "files": _own_files(spec)}).encode())
        _loop(sock, forker)
    finally:
        os._exit(0)


def _preload(spec: dict[str, Any], own_fd: int, set_title: Callable[[str], None]) -> str:
    """Become the bot's world (cwd, env, sys.path, user), import its module; "" or why not."""
    set_title(f"supervisor: zygote {spec['bot']} {spec['module']}")
    try:
        os.chdir(spec["cwd"])
        os.environ.clear()
        os.environ.update(spec["env"])
        extra = [p for p in spec["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[0:1] = [os.getcwd(), *extra]
        if spec.get("process"):  # user and groups: the import never runs as us
            from supervisor.config import process as procsettings  # noqa: PLC0415

            procsettings.apply(spec["process"])
        importlib.import_module(spec["module"])
    except BaseException:
        return f"importing {spec['module']} failed:\n{traceback.format_exc(limit=8)}"
    return fork_safety_problem(own_fd)


def fork_safety_problem(own_fd: int) -> str:
    """Why forking this process now would give broken workers, or ""."""
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        return (
            f"the module started {len(threads)} thread(s) at import ({', '.join(threads)}); "
            "a forked worker would not have them: start threads in the bot's function"
        )
    sockets = [fd for fd, target in _open_fds() if target.startswith("socket:") and fd != own_fd]
    if sockets:
        return (
            f"the module opened {len(sockets)} socket(s) at import (fds {sockets}); every "
            "worker would share them: connect in the bot's function"
        )
    return ""


def _open_fds() -> list[tuple[int, str]]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.append((int(name), os.readlink(f"/proc/self/fd/{name}")))
    return found


def _own_files(spec: dict[str, Any]) -> dict[str, int]:
    """The bot's own imported sources (under its cwd or PYTHONPATH, not an installed
    package) and their mtimes, to notice a deploy."""
    roots = [os.getcwd(), *(p for p in spec["env"].get("PYTHONPATH", "").split(os.pathsep) if p)]
    roots = [os.path.join(os.path.realpath(r), "") for r in roots]
    installed = os.path.join(os.path.realpath(sys.prefix), "")
    files: dict[str, int] = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if real.startswith(installed) or not any(real.startswith(r) for r in roots):
            continue
        with contextlib.suppress(OSError):
            files[real] = os.stat(real).st_mtime_ns
    return files


def _loop(sock: socket.socket, forker: Forker) -> None:
    while True:
        try:
            msg, ancdata, _, _ = sock.recvmsg(
                forker.max_batch_bytes, socket.CMSG_SPACE(forker.max_fds * 4)
            )
        except InterruptedError:
            continue
        if not msg:
            return
        fds = forker.received_fds(ancdata)
        try:
            replies = forker.fork_batch(json.loads(msg), fds)
        except (ValueError, KeyError, TypeError, OSError) as e:
            replies = error_replies(msg, e)
        finally:
            for fd in fds:
                os.close(fd)
        sock.send(json.dumps(replies).encode())


def error_replies(msg: bytes, e: Exception) -> list[dict[str, object]]:
    """One error reply per request id a batch that could not be forked names (the fork
    server's and the zygotes' answer alike)."""
    ids: list[object] = []
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        ids = [req.get("id") for req in json.loads(msg)]
    return [{"id": i, "error": f"{type(e).__name__}: {e}"} for i in ids]
