"""The wire format: msgpack messages, their kinds, limits and version.

Only this module knows how bytes on a socket map to messages. Every frame is
untrusted: it is unpacked with size limits and checked against its schema,
and anything else raises `ProtocolError` (never pickle, never `eval`).

Control socket (`ipc://RUN_DIR/control`, ROUTER; the CLI is a DEALER):

    request   one frame   msgpack map
              +---------------------------------------------------+
              | "v": 1  "id": uint  "cmd": str  "args": map       |
              +---------------------------------------------------+
    reply     one frame   msgpack map
              +---------------------------------------------------+
              | "v": 1  "id": uint  "ok": true   "result": any    |
              | "v": 1  "id": uint  "ok": false  "error": {       |
              |                       "code": str, "message": str}|
              +---------------------------------------------------+

A DEALER peer sends just the payload frame; a REQ peer puts an empty
delimiter frame before it. The ROUTER keeps whatever envelope came and
sends the reply back behind the same envelope.
"""

from __future__ import annotations

import msgpack

from supervisor.errors import ProtocolError

# Imported for annotations only: this module is on the CLI's start-up path, where
# typing and pathlib would cost several milliseconds of every call.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

VERSION = 1
MAX_CONTROL_FRAME_BYTES = 1 << 20
MAX_REPLY_FRAME_BYTES = 64 << 20  # a status of thousands of workers
_MAX_STR = 1 << 16
_MAX_ITEMS = 1 << 16

COMMANDS = frozenset({"status", "scale", "start", "stop", "restart", "shutdown", "ping"})


class _Record:
    """A small value type; dataclasses or NamedTuple would import heavy modules."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{n}={v!r}" for n, v in zip(self.__slots__, self._values(), strict=True)
        )
        return f"{type(self).__name__}({fields})"


class Request(_Record):
    __slots__ = ("args", "cmd", "id")

    def __init__(self, id: int, cmd: str, args: dict[str, Any]) -> None:
        self.id, self.cmd, self.args = id, cmd, args


class Reply(_Record):
    __slots__ = ("error_code", "error_message", "id", "ok", "result")

    def __init__(
        self, id: int, ok: bool, result: Any = None, error_code: str = "", error_message: str = ""
    ) -> None:
        self.id, self.ok, self.result = id, ok, result
        self.error_code, self.error_message = error_code, error_message


def encode_request(request: Request) -> bytes:
    payload = {"v": VERSION, "id": request.id, "cmd": request.cmd, "args": request.args}
    return _pack(payload)


def decode_request(frame: bytes) -> Request:
    data = _unpack_map(frame, MAX_CONTROL_FRAME_BYTES, _MAX_STR, _MAX_ITEMS)
    _check_version(data)
    request_id, cmd, args = data.get("id"), data.get("cmd"), data.get("args", {})
    if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
        raise ProtocolError("request id must be an unsigned integer")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}")
    if not isinstance(args, dict):
        raise ProtocolError("request args must be a map")
    return Request(request_id, cmd, args)


def encode_reply(reply: Reply) -> bytes:
    payload: dict[str, Any] = {"v": VERSION, "id": reply.id, "ok": reply.ok}
    if reply.ok:
        payload["result"] = reply.result
    else:
        payload["error"] = {"code": reply.error_code, "message": reply.error_message}
    return _pack(payload)


def decode_reply(frame: bytes) -> Reply:
    data = _unpack_map(frame, MAX_REPLY_FRAME_BYTES, len(frame), len(frame))
    _check_version(data)
    reply_id, ok = data.get("id"), data.get("ok")
    if not isinstance(reply_id, int) or not isinstance(ok, bool):
        raise ProtocolError("reply needs an integer id and a boolean ok")
    if ok:
        return Reply(reply_id, True, data.get("result"))
    error = data.get("error")
    if not isinstance(error, dict):
        raise ProtocolError("error reply without an error map")
    return Reply(reply_id, False, None, str(error.get("code")), str(error.get("message")))


def _pack(payload: Any) -> bytes:
    try:
        return msgpack.packb(payload, use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as e:
        raise ProtocolError(f"cannot encode: {e}") from None


def _unpack_map(frame: bytes, max_bytes: int, max_str: int, max_items: int) -> dict[str, Any]:
    if len(frame) > max_bytes:
        raise ProtocolError(f"frame of {len(frame)} bytes is over the limit of {max_bytes}")
    try:
        data = msgpack.unpackb(
            frame,
            raw=False,
            strict_map_key=True,
            max_str_len=max_str,
            max_bin_len=max_str,
            max_array_len=max_items,
            max_map_len=max_items,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises many types on bad input; all mean the same here
        raise ProtocolError(f"undecodable frame: {type(e).__name__}") from None
    if not isinstance(data, dict):
        raise ProtocolError("expected a map")
    return data


def _check_version(data: dict[str, Any]) -> None:
    if data.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {data.get('v')!r} (this is {VERSION})")
