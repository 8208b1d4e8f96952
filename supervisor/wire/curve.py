"""The remote control endpoint over CURVE, both ends. libzmq does the crypto.

    supervisor                                   remote CLI
    ROUTER tcp://HOST:PORT  curve_server   <-    DEALER  curve_serverkey = server public
      ZAP handler on inproc://zeromq.zap.01        curve_publickey/secretkey = its own pair
      (pyzmq's AsyncioAuthenticator, on the loop)

Every connection's CURVE handshake asks the ZAP handler, which admits a
client public key only if it is listed, and names the connection with the
client's name (ZAP's User-Id, read back from each message's `User-Id`
property). A refused peer gets ZAP status 400 and its connection is closed
before any of its messages reach the ROUTER; it sees a `HANDSHAKE_FAILED_AUTH`
monitor event, which `request` turns into `RefusedError`. The handshake runs
in libzmq's I/O thread with a deadline (`HANDSHAKE_IVL`), so a peer that stalls
in it holds nothing of ours; frames over `MAXMSGSIZE` close their connection.

Key files are pyzmq's certificate files (`zmq.auth.create_certificates`).
Only sockets with a ZAP domain or a security mechanism ask ZAP (libzmq 4.3), so
the local ipc sockets of the same context are untouched.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import parse_monitor_message

ZAP_DOMAIN = "supervisor"
MAX_REQUEST_FRAME_BYTES = 64 << 10  # a command and its arguments; far more than any needs
HANDSHAKE_TIMEOUT_S = 5.0
_SEND_HWM = 1000  # replies queued per client before more are dropped
_LINGER_MS = 1000


class RefusedError(Exception):
    """The server's ZAP handler refused our key (not listed there)."""


class NotListeningError(Exception):
    """The connection itself failed (refused, or no route): nothing to wait for."""


class NoReplyError(Exception):
    """Nothing came back in time (down, unreachable, or a wrong server key)."""


def new_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public, 0644) and NAME.key_secret (0600 from its first byte)."""
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it first or pick another name")
    directory.mkdir(parents=True, exist_ok=True)
    previous = os.umask(0o077)
    try:
        zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(previous)
    os.chmod(public, 0o644)
    return public, secret


def read_key_file(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a certificate file, Z85-encoded."""
    public, secret = zmq.auth.load_certificate(str(path))
    return public, secret


class _Gate(AsyncioAuthenticator):
    """ZAP: a listed key is admitted under its client name; any other is refused."""

    def __init__(
        self, context: zmq.asyncio.Context, names: Mapping[str, str], on_refused: Callable[[], None]
    ) -> None:
        super().__init__(context)
        self._names = {k.encode(): v for k, v in names.items()}  # Z85 key -> client name
        self._on_refused = on_refused
        self.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self._names:
            return True
        self._on_refused()
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._names[zmq.utils.z85.encode(client_public_key)]


class RemoteServer:
    """The CURVE ROUTER; `recv` says which client (by name) sent each request."""

    def __init__(
        self,
        context: zmq.asyncio.Context,
        address: str,
        key_file: Path,
        clients: Mapping[str, str],
        max_frame_bytes: int = MAX_REQUEST_FRAME_BYTES,
    ) -> None:
        self.refused = 0
        public, secret = read_key_file(key_file)
        if secret is None:
            raise ValueError(f"{key_file} holds no secret key")
        self._gate = _Gate(context, clients, self._count_refused)
        self._gate.start()
        sock = context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
        sock.setsockopt(zmq.HANDSHAKE_IVL, int(HANDSHAKE_TIMEOUT_S * 1000))
        sock.setsockopt(zmq.SNDHWM, _SEND_HWM)
        sock.setsockopt(zmq.LINGER, _LINGER_MS)
        self._sock = sock
        try:
            sock.bind(address)
        except zmq.ZMQError as e:
            self.close()
            raise OSError(e.errno, f"cannot listen on {address}: {e.strerror}") from None
        self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def _count_refused(self) -> None:
        self.refused += 1

    async def recv(self) -> tuple[list[bytes], bytes, str]:
        """The next request: (envelope, payload, client name)."""
        frames = await self._sock.recv_multipart(copy=False)
        last = frames[-1]
        client = cast("str", last.get("User-Id"))  # set by ZAP for every admitted peer
        return [f.bytes for f in frames[:-1]], last.bytes, client

    def send(self, envelope: list[bytes], payload: bytes) -> None:
        """Queue a reply; dropped if that client is not reading (never waits)."""
        with contextlib.suppress(zmq.Again):
            self._sock.send_multipart([*envelope, payload], zmq.DONTWAIT)

    def close(self) -> None:
        self._sock.close()
        self._gate.stop()


def request(  # noqa: PLR0917  (the one blocking call of a remote CLI command)
    address: str,
    server_key: str,
    key_file: Path,
    payload: bytes,
    timeout_s: float,
    max_reply_bytes: int,
) -> bytes:
    """Send one frame over CURVE and return the reply frame (a blocking client call)."""
    public, secret = read_key_file(key_file)
    if secret is None:
        raise ValueError(f"{key_file} holds no secret key (use the .key_secret file)")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.DEALER)
    monitor = sock.get_monitor_socket(
        zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_CONNECTED
    )
    try:
        _curve_client(sock, server_key, public, secret, max_reply_bytes)
        sock.connect(address)
        sock.send(payload)
        return _await_reply(sock, monitor, time.monotonic() + timeout_s)
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        context.term()


def _curve_client(sock: Any, server_key: str, public: bytes, secret: bytes, limit: int) -> None:
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
    sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.setsockopt(zmq.MAXMSGSIZE, limit)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.HANDSHAKE_IVL, int(HANDSHAKE_TIMEOUT_S * 1000))


def _await_reply(sock: Any, monitor: Any, deadline: float) -> bytes:
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    connected = False  # once TCP connected, a retry is a failed handshake: wait it out
    while (left := deadline - time.monotonic()) > 0:
        ready = dict(poller.poll(int(left * 1000) + 1))
        if sock in ready:
            frame: bytes = sock.recv()
            return frame
        if monitor in ready:
            event = parse_monitor_message(monitor.recv_multipart())
            if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise RefusedError("the server refused this client's key (not listed there)")
            connected = connected or event["event"] == zmq.EVENT_CONNECTED
            if event["event"] == zmq.EVENT_CONNECT_RETRIED and not connected:
                # The TCP connect failed and libzmq would retry it for ever: a host whose port
                # refuses (supervisor down) is said at once, not after the whole timeout.
                raise NotListeningError("the connection was refused")
    raise NoReplyError("no reply in time")
