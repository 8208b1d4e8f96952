"""The supervisor's two helper processes, seen from the supervisor.

    Guardian     ends the fleet's process groups if we die without doing so (guardian.py)
    ForkServer   forks Python module bots from a warm interpreter (forkserver.py)

Both are our children, started at start-up and started again if they die.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import structlog

from supervisor.daemon.helpers import forkserver, guardian
from supervisor.daemon.helpers.guardian import Group
from supervisor.daemon.process import Child, Reaper

log = structlog.get_logger("supervisor.helpers")

SPAWN_TIMEOUT_S = 10.0
_SOCKET_BUFFER_BYTES = 1 << 20
_MAX_BATCH = 32  # small batches: each one is adopted as soon as it is forked (limit: 100)
_MAX_BATCH_BYTES = 128 << 10


class Guardian:
    """Our side of the guardian process (see guardian.py): spawn it, keep it told."""

    def __init__(self, reaper: Reaper) -> None:
        self._reaper = reaper
        self._groups: dict[int, Group] = {}
        self._popen: subprocess.Popen[bytes] | None = None
        self._closing = False
        self._outbox: list[bytes] = []
        self._trees: list[str] = []  # our cgroup subtrees: killed and removed if we die

    def start(self) -> None:
        self._popen = subprocess.Popen(
            [sys.executable, "-I", "-S", guardian.__file__],
            stdin=subprocess.PIPE,
            start_new_session=True,  # ^C on our terminal must not reach it
            close_fds=True,
        )
        self._reaper.watch(self._popen.pid, self._on_exit)
        for g in self._groups.values():
            self._send(f"add {g.pgid} {g.start_ticks} {g.signal} {g.timeout_s}")
        for tree in self._trees:
            self._send(f"tree {tree}")
        log.debug("guardian_started", pid=self._popen.pid)

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def add(self, child: Child, sig: int, timeout_s: float) -> None:
        if child.start_ticks is None:
            return
        g = Group(child.pgid, child.start_ticks, int(sig), timeout_s)
        self._groups[g.pgid] = g
        self._send(f"add {g.pgid} {g.start_ticks} {g.signal} {g.timeout_s}")

    def add_tree(self, directory: str) -> None:
        """A cgroup subtree of ours: if we die, the guardian kills what is in it."""
        self._trees.append(directory)
        self._send(f"tree {directory}")

    def remove(self, child: Child) -> None:
        """Forget child's group, unless its id now names a newer worker's group.

        A leftover's end is awaited; by then the group may be gone and its pid reused by a
        worker spawned meanwhile, whose `add` replaced the entry: that one stays.
        """
        g = self._groups.get(child.pgid)
        if g is not None and g.start_ticks == child.start_ticks:
            del self._groups[child.pgid]
            self._send(f"del {child.pgid}")

    def groups(self) -> list[Group]:
        return list(self._groups.values())

    def close(self, clean: bool) -> None:
        """Let the guardian go; unless the fleet was stopped cleanly, it ends the groups."""
        self._closing = True
        if clean:
            self._send("bye")
        self._flush()
        if self._popen and self._popen.stdin:
            self._popen.stdin.close()

    def _send(self, line: str) -> None:
        """Queue a line; all lines of one pass of the loop go out in one write.

        A write per spawn would wake the guardian for every worker of a burst.
        """
        if not self._outbox:
            with contextlib.suppress(RuntimeError):  # no loop: close() flushes itself
                asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(line.encode() + b"\n")

    def _flush(self) -> None:
        data, self._outbox = b"".join(self._outbox), []
        if not data or self._popen is None or self._popen.stdin is None:
            return
        # If it died, _on_exit starts another and replays the groups.
        with contextlib.suppress(BrokenPipeError, ValueError):
            view = memoryview(data)
            while view:
                view = view[os.write(self._popen.stdin.fileno(), view) :]

    def _on_exit(self, returncode: int) -> None:
        if self._popen is not None:
            self._popen.returncode = returncode
            if self._popen.stdin:
                self._popen.stdin.close()
        if not self._closing:
            log.warning("guardian_exited", exit_code=returncode)
            self.start()


class ForkServer:
    """Our side of the fork server (see forkserver.py)."""

    def __init__(self, reaper: Reaper) -> None:
        self._reaper = reaper
        self._sock: socket.socket | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._queue: list[_Pending] = []
        self._flushing = False
        self._closing = False
        # Zygote notices (started, exited, failed, replaced): the owner sends them to events.
        self.on_notice: Callable[[str, str, dict[str, Any]], None] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def start(self, launched: tuple[subprocess.Popen[bytes], socket.socket] | None = None) -> None:
        """Adopt a fork server launched early (forkserver.launch), or launch one now."""
        self._popen, ours = launched or forkserver.launch()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER_BYTES)
        ours.setblocking(False)
        self._sock = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._on_readable)
        self._reaper.watch(self._popen.pid, self._on_exit)
        log.debug("fork_server_started", pid=self._popen.pid)

    async def spawn(
        self,
        target: str,
        env: Mapping[str, str],
        cwd: Path,
        title: str,
        stop: tuple[int, float],
        *,
        process: dict[str, Any] | None = None,
        cgroup: Sequence[str] = (),
        preload: tuple[str, Mapping[str, str]] | None = None,
    ) -> Child:
        """Fork a worker that runs `target` as `python -m supervisor.sdk.entry` would.

        With `preload` (the bot's name and its workers' common env), the worker is forked
        from the bot's zygote, which has imported the module already (zygote.py).
        Spawns asked for in the same pass of the loop go out as one batch.
        Raises OSError if the fork server cannot start it.
        """
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request_id = next(self._ids)
        request = {
            "id": request_id,
            "target": target,
            "argv": [target],
            "env": dict(env),
            "cwd": str(cwd),
            "title": title,
            "signal": int(stop[0]),
            "timeout_s": stop[1],
            "process": process,
            "cgroup": list(cgroup),
        }
        if preload is not None:
            request["preload"], request["process"] = zygote_spec(target, cwd, preload, process)
        pending = _Pending(request, [out_w, err_w])
        self._pending[request_id] = pending
        self._queue.append(pending)
        self._reaper.expect_adoption()
        try:
            if not self._flushing:
                await self._flush()
            with anyio.fail_after(SPAWN_TIMEOUT_S):
                await pending.done.wait()
            if "error" in pending.reply:
                raise OSError(f"fork server: {pending.reply['error']}")
            pid, ticks = int(pending.reply["pid"]), int(pending.reply["start_ticks"])
            return Child(pid, out_r, err_r, self._reaper, ticks=ticks or None)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            pending.close_fds()
            del self._pending[request_id]
            self._reaper.adoption_done()

    async def _flush(self) -> None:
        """Send what is queued, in batches; first let the rest of this pass queue up."""
        self._flushing = True
        try:
            await anyio.lowlevel.checkpoint()
            while self._queue:
                batch = self._queue[:_MAX_BATCH]
                payload = json.dumps([p.request for p in batch]).encode()
                while len(batch) > 1 and len(payload) > _MAX_BATCH_BYTES:
                    batch = batch[: len(batch) // 2]
                    payload = json.dumps([p.request for p in batch]).encode()
                await self._send(payload, [fd for p in batch for fd in p.fds])
                del self._queue[: len(batch)]
                for p in batch:
                    p.close_fds()  # the fork server holds its own copies now
        except OSError as e:
            for p in self._queue:
                p.fail(str(e))
            self._queue.clear()
        finally:
            self._flushing = False

    async def _send(self, payload: bytes, fds: Sequence[int]) -> None:
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        while True:
            if self._sock is None:
                raise OSError("the fork server is not running")
            try:
                self._sock.sendmsg([payload], rights)
                return
            except BlockingIOError:
                await anyio.wait_writable(self._sock)

    def _on_readable(self) -> None:
        while self._sock is not None:
            try:
                data = self._sock.recv(_MAX_BATCH_BYTES)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._disconnect()
                return
            for reply in json.loads(data):
                if "notice" in reply:
                    self._on_notice(reply)
                    continue
                pending = self._pending.get(reply.get("id", -1))
                if pending is not None:
                    pending.reply = reply
                    pending.done.set()

    def _on_notice(self, notice: dict[str, Any]) -> None:
        event, level = str(notice.pop("notice")), str(notice.pop("level", "warning"))
        if self.on_notice is not None:
            self.on_notice(event, level, notice)
        else:
            getattr(log, level if level in ("info", "warning", "error") else "warning")(
                event, **notice
            )

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closing
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for pending in self._pending.values():
            pending.fail("the fork server exited")
        self._queue.clear()

    def close(self) -> None:
        """Clean shutdown; the fork server exits when its socket closes."""
        self._closing = True
        self._disconnect()

    def _on_exit(self, returncode: int) -> None:
        if self._popen is not None:
            self._popen.returncode = returncode
        self._disconnect()
        if not self._closing:
            log.warning("fork_server_exited", exit_code=returncode)
            self.start()


def zygote_spec(
    target: str, cwd: Path, preload: tuple[str, Mapping[str, str]], process: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the zygote's spec, what is left of `process` for each worker).

    The user and groups are the zygote's (the import never runs as the supervisor's user);
    limits and umask stay per worker. The key changes whenever any of it does.
    """
    process = process or {}
    ids = {k: process[k] for k in ("uid", "gid", "groups") if process.get(k) is not None}
    rest = {k: v for k, v in process.items() if k not in ids} or None
    spec = {
        "bot": preload[0],
        "module": target.partition(":")[0],
        "cwd": str(cwd),
        "env": dict(preload[1]),
        "process": ids,
    }
    spec["key"] = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return spec, rest


class _Pending:
    """One spawn asked of the fork server, until its reply arrives."""

    def __init__(self, request: dict[str, Any], fds: list[int]) -> None:
        self.request = request
        self.fds = fds  # the worker's stdout and stderr write ends, until sent
        self.done = anyio.Event()
        self.reply: dict[str, Any] = {}

    def fail(self, error: str) -> None:
        self.reply = {"error": error}
        self.done.set()

    def close_fds(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
