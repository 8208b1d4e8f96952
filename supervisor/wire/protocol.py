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

Worker socket (`ipc://RUN_DIR/workers`, ROUTER; each worker is a DEALER).
One ZeroMQ message is one frame holding a *batch*:

    worker -> supervisor   [VERSION, token: bin 16, [message, ...]]
    supervisor -> worker   [VERSION, [message, ...]]

    message = [kind: uint, fields...]
    +------+-----------+------------------------------------------------+
    | kind | name      | fields                                         |
    +------+-----------+------------------------------------------------+
    |    1 | HELLO     | bot: str, slot: uint, pid: uint, sdk: str      |
    |    2 | READY     |                                                |
    |    3 | HEARTBEAT | seq: uint                                      |
    |    4 | METRIC    | name: str, value: int|float, counter: bool     |
    |    5 | LOG       | level: str, message: str                       |
    |    6 | DROPPED   | count: uint  (metrics the SDK's buffer shed)   |
    |    7 | BYE       | seq: uint  (last batch; the supervisor ACKs it) |
    |  32+ | plugins   | validated by the plugin that registered it     |
    +------+-----------+------------------------------------------------+
    |   64 | CONFIG    | values: map str -> any                         |
    |   65 | DRAIN     | finish what you hold, then exit                |
    |   66 | STOP      | exit now                                       |
    |   67 | ACK       | seq: uint                                      |
    |   68 | WARM      | keys: [str, ...]  (refresh these cache keys)   |
    +------+-----------+------------------------------------------------+

The token is the worker's secret, given in its environment at spawn; every
batch carries it, so a frame is authenticated on its own. A batch with any
message that breaks the schema is dropped whole.
"""

from __future__ import annotations

import msgpack

from supervisor.errors import ProtocolError

# Imported for annotations only: this module is on the CLI's start-up path, where
# typing and pathlib would cost several milliseconds of every call.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

VERSION = 1
MAX_CONTROL_FRAME_BYTES = 1 << 20
MAX_REPLY_FRAME_BYTES = 64 << 20  # a status of thousands of workers
_MAX_STR = 1 << 16
_MAX_ITEMS = 1 << 16

COMMANDS = frozenset({"status", "scale", "start", "stop", "restart", "shutdown", "ping", "reload"})

MAX_WORKER_FRAME_BYTES = 1 << 20
MAX_BATCH = 4096  # messages in one batch
MAX_NAME = 200  # metric names
MAX_TEXT = 16384  # log lines and other strings
TOKEN_BYTES = 16

HELLO, READY, HEARTBEAT, METRIC, LOG, DROPPED, BYE = 1, 2, 3, 4, 5, 6, 7
CONFIG, DRAIN, STOP, ACK, WARM = 64, 65, 66, 67, 68
MAX_KEY = 1024  # cache keys
PLUGIN_KINDS = range(32, 64)
_LEVELS = frozenset({"debug", "info", "warning", "error"})


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
    data = _unpack(frame, max_bytes, max_str, max_items)
    if not isinstance(data, dict):
        raise ProtocolError("expected a map")
    return data


def _check_version(data: dict[str, Any]) -> None:
    if data.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {data.get('v')!r} (this is {VERSION})")


# ---------------------------------------------------------------- worker batches


def encode_batch(token: bytes, messages: list[list[Any]]) -> bytes:
    """A worker's batch (the SDK's side)."""
    return _pack([VERSION, token, messages])


def decode_batch(frame: bytes) -> tuple[bytes, list[list[Any]]]:
    """(token, messages) of a worker's batch; ProtocolError if any of it is wrong.

    One unpack per batch; the checks are written out for speed (this is the hot
    path: hundreds of thousands of messages a second).
    """
    data = _unpack(frame, MAX_WORKER_FRAME_BYTES, MAX_TEXT, MAX_BATCH)
    if type(data) is not list or len(data) != 3 or data[0] != VERSION:
        raise ProtocolError("a batch is [version, token, messages]")
    token, messages = data[1], data[2]
    if type(token) is not bytes or len(token) != TOKEN_BYTES or type(messages) is not list:
        raise ProtocolError("a batch is [version, token, messages]")
    for m in messages:
        if type(m) is not list or not m:
            raise ProtocolError("a message is [kind, fields...]")
        kind = m[0]
        if kind == METRIC:
            if not (
                len(m) == 4
                and type(m[1]) is str
                and 0 < len(m[1]) <= MAX_NAME
                and type(m[2]) in _NUMBERS
                and type(m[3]) is bool
            ):
                raise ProtocolError("METRIC is [4, name, value, counter]")
        else:
            check = _CHECKS.get(kind) if type(kind) is int else None
            if check is None:
                raise ProtocolError(f"unknown message kind {kind!r}")
            check(m)
    return token, messages


def register_kind(kind: int, check: Callable[[list[Any]], None]) -> None:
    """Let a plugin accept its own message kind (32-63); check raises ProtocolError."""
    if kind not in PLUGIN_KINDS:
        raise ValueError(f"plugin message kinds are {PLUGIN_KINDS.start}-{PLUGIN_KINDS.stop - 1}")
    _CHECKS[kind] = check


def encode_commands(messages: list[list[Any]]) -> bytes:
    """What the supervisor sends a worker."""
    return _pack([VERSION, messages])


def decode_commands(frame: bytes) -> list[list[Any]]:
    """The supervisor's messages to a worker (the SDK's side), checked likewise."""
    data = _unpack(frame, MAX_WORKER_FRAME_BYTES, MAX_WORKER_FRAME_BYTES, MAX_BATCH)
    if type(data) is not list or len(data) != 2 or data[0] != VERSION or type(data[1]) is not list:
        raise ProtocolError("commands are [version, messages]")
    for m in data[1]:
        if type(m) is not list or not m:
            raise ProtocolError("a message is [kind, fields...]")
        kind = m[0]
        ok = (
            (kind == CONFIG and len(m) == 2 and type(m[1]) is dict)
            or (kind in (DRAIN, STOP) and len(m) == 1)
            or (kind == ACK and len(m) == 2 and _uint(m[1]))
            or (kind == WARM and len(m) == 2 and type(m[1]) is list and all(_key(k) for k in m[1]))
        )
        if not ok:
            raise ProtocolError(f"bad command {m[:1]!r}")
    messages: list[list[Any]] = data[1]
    return messages


_NUMBERS = (int, float)


def _uint(value: object) -> bool:
    return type(value) is int and value >= 0


def _key(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_KEY


def _text(value: object, limit: int = MAX_TEXT) -> bool:
    return type(value) is str and len(value) <= limit


def _check(ok: Callable[[list[Any]], bool], shape: str) -> Callable[[list[Any]], None]:
    def check(m: list[Any]) -> None:
        if not ok(m):
            raise ProtocolError(f"{shape} expected")

    return check


_CHECKS: dict[object, Callable[[list[Any]], None]] = {
    HELLO: _check(
        lambda m: (
            len(m) == 5
            and _text(m[1], MAX_NAME)
            and _uint(m[2])
            and _uint(m[3])
            and _text(m[4], MAX_NAME)
        ),
        "HELLO [1, bot, slot, pid, sdk]",
    ),
    READY: _check(lambda m: len(m) == 1, "READY [2]"),
    HEARTBEAT: _check(lambda m: len(m) == 2 and _uint(m[1]), "HEARTBEAT [3, seq]"),
    LOG: _check(
        lambda m: len(m) == 3 and type(m[1]) is str and m[1] in _LEVELS and _text(m[2]),
        "LOG [5, level, text]",
    ),
    DROPPED: _check(lambda m: len(m) == 2 and _uint(m[1]), "DROPPED [6, count]"),
    BYE: _check(lambda m: len(m) == 2 and _uint(m[1]), "BYE [7, seq]"),
}


def _unpack(frame: bytes, max_bytes: int, max_str: int, max_items: int) -> Any:
    if len(frame) > max_bytes:
        raise ProtocolError(f"frame of {len(frame)} bytes is over the limit of {max_bytes}")
    try:
        return msgpack.unpackb(
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
