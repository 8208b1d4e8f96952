"""ZeroMQ sockets of the supervisor. The only module that imports `zmq`.

    control   ROUTER  ipc://RUN_DIR/control   CLI requests and replies

Endpoints are unix sockets inside `run_dir`, which is mode 0700, so only
the owner can connect. A frame over the size limit closes that peer's
connection inside libzmq and never reaches the loop.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import zmq
import zmq.asyncio

from supervisor.protocol import MAX_CONTROL_FRAME_BYTES

_CLOSE_LINGER_MS = 1000  # the last replies (e.g. to `shutdown`) still get out


def endpoint(path: str | Path) -> str:
    return f"ipc://{path}"


class ControlServer:
    """The ROUTER that CLI clients (DEALER or REQ) send requests to."""

    def __init__(self, context: zmq.asyncio.Context, path: str | Path) -> None:
        self.path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a dead run; run_dir's lock says it is ours
        self._sock = context.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_CONTROL_FRAME_BYTES)
        self._sock.setsockopt(zmq.LINGER, _CLOSE_LINGER_MS)
        self._sock.bind(endpoint(path))

    async def recv(self) -> tuple[list[bytes], bytes]:
        """The next request: (envelope to reply to, payload)."""
        frames = await self._sock.recv_multipart(copy=True)
        return frames[:-1], frames[-1]

    async def send(self, envelope: list[bytes], payload: bytes) -> None:
        await self._sock.send_multipart([*envelope, payload])

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def new_context() -> zmq.asyncio.Context:
    return zmq.asyncio.Context(io_threads=1)
