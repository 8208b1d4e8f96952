"""A minimal ZMTP 3.0 DEALER for the CLI, over a unix socket, without pyzmq.

Why: importing pyzmq costs about 30 ms, as much as the rest of a `supervisor
status` call together. The control socket only ever needs one request and
one reply over the NULL mechanism, which takes a page of RFC 23 (ZMTP 3.0):

    greeting   10-byte signature, version 3.0, mechanism "NULL", as-server 0
    READY      command frame with the Socket-Type "DEALER" property
    message    frames: flags (MORE 0x01, LONG 0x02, COMMAND 0x04), size, body

The supervisor's side stays real libzmq (a ROUTER); the integration tests
drive every CLI command through this client against it.
"""

from __future__ import annotations

import struct

# The C module: `socket` would cost ~10 % of a status call building its enums (IntEnum of
# every constant), none of which one AF_UNIX stream needs.
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as unix_socket

from supervisor.errors import ProtocolError

_MORE, _LONG, _COMMAND = 0x01, 0x02, 0x04
_GREETING = (
    b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 0]) + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
)


def _property(name: bytes, value: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack(">I", len(value)) + value


def _frame(body: bytes, flags: int = 0) -> bytes:
    if len(body) > 255:
        return bytes([flags | _LONG]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


_READY = _frame(b"\x05READY" + _property(b"Socket-Type", b"DEALER"), _COMMAND)


class DealerConnection:
    """One connected DEALER: send a one-frame message, receive one message."""

    def __init__(self, path: str, timeout_s: float, max_frame_bytes: int) -> None:
        self._max = max_frame_bytes
        self._sock = unix_socket(AF_UNIX, SOCK_STREAM)
        self._sock.settimeout(timeout_s)
        try:
            self._sock.connect(path)  # FileNotFoundError / ConnectionRefusedError: none there
            self._sock.sendall(_GREETING + _READY)
            self._handshake()
        except BaseException:
            self._sock.close()
            raise

    def _handshake(self) -> None:
        greeting = self._read_exact(64)
        if greeting[0] != 0xFF or greeting[9] & 0x01 != 0x01 or greeting[10] < 3:
            raise ProtocolError("the peer does not speak ZMTP 3")
        if greeting[12:32].rstrip(b"\x00") != b"NULL":
            raise ProtocolError("the peer wants a security mechanism; use the TCP client")
        flags, body = self._read_frame()
        if not flags & _COMMAND or not body.startswith(b"\x05READY"):
            raise ProtocolError("the peer did not send READY")

    def send(self, payload: bytes) -> None:
        self._sock.sendall(_frame(payload))

    def recv(self) -> list[bytes]:
        """The next message's frames (commands such as PING are skipped)."""
        frames: list[bytes] = []
        while True:
            flags, body = self._read_frame()
            if flags & _COMMAND:
                continue
            frames.append(body)
            if not flags & _MORE:
                return frames

    def close(self) -> None:
        self._sock.close()

    def _read_frame(self) -> tuple[int, bytes]:
        flags = self._read_exact(1)[0]
        if flags & _LONG:
            (size,) = struct.unpack(">Q", self._read_exact(8))
        else:
            size = self._read_exact(1)[0]
        if size > self._max:
            raise ProtocolError(f"frame of {size} bytes is over the limit of {self._max}")
        return flags, self._read_exact(size)

    def _read_exact(self, n: int) -> bytes:
        chunks, remaining = [], n
        while remaining:
            chunk = self._sock.recv(min(remaining, 1 << 20))
            if not chunk:
                raise ConnectionResetError("the supervisor closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
