"""ZeroMQ sockets, ours and the SDK's. The only module that imports `zmq`.

    control   ROUTER  ipc://RUN_DIR/control   CLI requests and replies
    workers   ROUTER  ipc://RUN_DIR/workers   batches from workers (DEALERs), commands back
    events    PUB     ipc://RUN_DIR/events    fleet events for `supervisor events` and plugins

Endpoints are unix sockets inside `run_dir`. Each is bound under umask 077,
so its file is 0600 from the start (connecting needs write access to it):
only the supervisor's user (and root) can connect, even when `run_dir` is
0711 for bots that run as another user. Those reach the workers ROUTER
through extra endpoints (`WorkerServer.add_endpoint`), one per user, in a
directory of that user's own (daemon/endpoints.py).

libzmq closes the connection of a peer that sends a frame far over the size
limit; smaller oversize frames reach the loop and are counted there. Sends
never block the loop: a reply to a worker that is not reading is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any, cast

import zmq
import zmq.asyncio

from supervisor.wire.protocol import MAX_CONTROL_FRAME_BYTES, MAX_WORKER_FRAME_BYTES

_CLOSE_LINGER_MS = 1000  # the last replies (e.g. to `shutdown`) still get out
# Frames up to this reach the loop (and are counted when over the protocol's limit).
_WORKER_HARD_LIMIT = 4 * MAX_WORKER_FRAME_BYTES
_WORKER_RCVHWM = 10_000  # batches queued per worker before its DEALER holds back
# Requests queued per control peer: admission (policy/admission.py) serves a burst of 50 and
# 8 in flight, so more than this is a flood; it waits in the peer's own send queue, not ours.
_CONTROL_RCVHWM = 100
_STALL_CHECK_S = 5.0  # an idle control socket is asked directly this often (see recv)


def endpoint(path: str | Path) -> str:
    return f"ipc://{path}"


class ControlServer:
    """The ROUTER that CLI clients (DEALER or REQ) send requests to."""

    def __init__(self, context: zmq.asyncio.Context, path: str | Path) -> None:
        self.path = Path(path)
        _unlink_stale(self.path)
        self._sock = context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_CONTROL_FRAME_BYTES)
        self._sock.setsockopt(zmq.RCVHWM, _CONTROL_RCVHWM)
        self._sock.setsockopt(zmq.LINGER, _CLOSE_LINGER_MS)
        _bind_private(self._sock, self.path)
        self._direct: zmq.Socket[bytes] = zmq.Socket.shadow(self._sock.underlying)
        self.missed_wakeups = 0  # requests found by the stall check, not by a wake-up

    async def recv(self) -> tuple[list[bytes], bytes]:
        """The next request: (envelope to reply to, payload).

        A safety net under pyzmq's asyncio layer: libzmq's notification fd is edge-triggered,
        and a wake-up it loses (pyzmq #1203, #2173 report such) would leave a request unread
        until the next one arrives: for a lone `supervisor shutdown`, for ever. Every
        _STALL_CHECK_S without a wake-up the socket is asked directly; a request found there
        is served and counted in `missed_wakeups` (status: supervisor.control).
        """
        while True:
            pending = cast("asyncio.Future[list[bytes]]", self._sock.recv_multipart(copy=True))
            try:
                done, _ = await asyncio.wait({pending}, timeout=_STALL_CHECK_S)
            except BaseException:
                pending.cancel()
                raise
            if done or not pending.cancel():  # not cancelled: it completed meanwhile
                frames: list[bytes] = pending.result()
            else:
                try:
                    frames = self._direct.recv_multipart(zmq.DONTWAIT)
                except zmq.Again:
                    continue  # idle: nothing was missed
                self.missed_wakeups += 1
            return frames[:-1], frames[-1]

    async def send(self, envelope: list[bytes], payload: bytes) -> None:
        await self._sock.send_multipart([*envelope, payload])

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _bind_private(sock: Any, path: Path) -> None:
    """Bind an ipc endpoint whose socket file is 0600 from its first moment (no race)."""
    previous = os.umask(0o077)
    try:
        sock.bind(endpoint(path))
    finally:
        os.umask(previous)


def new_context() -> zmq.asyncio.Context:
    return zmq.asyncio.Context(io_threads=1)


def close_context(context: zmq.Context[Any]) -> None:
    """End the context within the close linger, whatever is still open on it.

    term() alone waits for every socket of the context to be closed and its queue sent: a
    socket some failed path left open, with a message queued for a peer that is gone, would
    keep the supervisor alive and silent for good (its control socket still accepting).
    destroy() closes them all with the linger our own sockets use, then terms.
    """
    context.destroy(linger=_CLOSE_LINGER_MS)


def _unlink_stale(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a socket of a dead run; run_dir's lock says it is ours


class WorkerServer:
    """The ROUTER that workers send batches to; commands go back to their identity."""

    def __init__(self, context: zmq.asyncio.Context, path: str | Path) -> None:
        self.path = Path(path)
        _unlink_stale(self.path)
        self._sock = context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.MAXMSGSIZE, _WORKER_HARD_LIMIT)
        self._sock.setsockopt(zmq.RCVHWM, _WORKER_RCVHWM)
        self._sock.setsockopt(zmq.LINGER, 0)
        _bind_private(self._sock, self.path)
        self._extra: list[Path] = []
        # The same socket without the asyncio layer: pyzmq's awaitable recv costs ~20 us of
        # Python per frame (a future, an events check), so waiting frames are taken directly.
        self._direct: zmq.Socket[bytes] = zmq.Socket.shadow(self._sock.underlying)

    async def recv_many(self, most: int) -> list[list[bytes]]:
        """Wait for a message, then take what else is waiting, up to `most` in all."""
        messages: list[list[bytes]] = [await self._sock.recv_multipart()]
        try:
            while len(messages) < most:
                messages.append(self._direct.recv_multipart(zmq.DONTWAIT))
        except zmq.Again:
            pass
        return messages

    def add_endpoint(self, path: str | Path, uid: int, gid: int) -> str:
        """Bind the same ROUTER at path too, its socket file owned by uid:gid (mode 0600)."""
        extra = Path(path)
        _unlink_stale(extra)
        _bind_private(self._sock, extra)
        os.chown(extra, uid, gid, follow_symlinks=False)
        self._extra.append(extra)
        return endpoint(extra)

    def send(self, identity: bytes, payload: bytes) -> bool:
        """Queue a frame for one worker; False if it had to be dropped."""
        return _sent(self._sock.send_multipart([identity, payload], zmq.DONTWAIT))

    def close(self) -> None:
        self._sock.close()
        for path in (self.path, *self._extra):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class EventPublisher:
    """PUB socket: [event name, msgpack payload] per event; subscribers filter by name."""

    def __init__(self, context: zmq.asyncio.Context, path: str | Path) -> None:
        self.path = Path(path)
        _unlink_stale(self.path)
        self._sock = context.socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        _bind_private(self._sock, self.path)

    def publish(self, topic: bytes, payload: bytes) -> None:
        # A slow subscriber loses events; we never wait for it.
        _sent(self._sock.send_multipart([topic, payload], zmq.DONTWAIT))

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _sent(done: object) -> bool:
    """A DONTWAIT send on an asyncio socket returns a finished future: did it go out?"""
    return cast("asyncio.Future[Any]", done).exception() is None


Timeout = zmq.Again  # what a subscriber's recv raises when nothing came in time


def subscribe(path: str | Path, timeout_s: float) -> zmq.Socket[bytes]:
    """A SUB socket on the event stream (for `supervisor events`)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    sock.connect(endpoint(path))
    return sock


class AsyncDealer:
    """A worker's end of the workers socket, for asyncio bots (the SDK's side).

    Sends never block: `send` says False when libzmq's queue to the supervisor
    is full, and the SDK keeps the batch.
    """

    def __init__(self, address: str) -> None:
        self._context = zmq.asyncio.Context()
        self._sock = _dealer(self._context, address)

    def send(self, frame: bytes) -> bool:
        return _sent(self._sock.send(frame, zmq.DONTWAIT))

    async def recv(self) -> bytes:
        frame: bytes = await self._sock.recv()
        return frame

    def close(self, linger_s: float = 0.0) -> None:
        self._sock.close(linger=int(linger_s * 1000))
        self._context.term()


class SyncDealer:
    """The same for sync bots: they read with `recv_nowait` and `poll`."""

    def __init__(self, address: str) -> None:
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._sock = _dealer(self._context, address)

    def send(self, frame: bytes) -> bool:
        try:
            self._sock.send(frame, zmq.DONTWAIT)
        except zmq.Again:
            return False
        return True

    def recv_nowait(self) -> bytes | None:
        try:
            frame: bytes = self._sock.recv(zmq.DONTWAIT)
        except zmq.Again:
            return None
        return frame

    def poll(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for something to read."""
        return bool(self._sock.poll(int(timeout_s * 1000), zmq.POLLIN))

    def close(self, linger_s: float = 0.0) -> None:
        self._sock.close(linger=int(linger_s * 1000))
        self._context.term()


def _dealer(context: Any, address: str) -> Any:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address if "://" in address else endpoint(address))
    return sock
