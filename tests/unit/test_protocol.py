"""Control messages: round trips, and every malformed frame is a ProtocolError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.errors import ProtocolError
from supervisor.wire import protocol
from supervisor.wire.protocol import Reply, Request


def test_request_round_trip() -> None:
    """A request decodes to what was encoded."""
    req = Request(7, "scale", {"bot": "echo", "count": 5})
    assert protocol.decode_request(protocol.encode_request(req)) == req


@pytest.mark.parametrize(
    "reply",
    [
        Reply(1, True, {"bots": {}}),
        Reply(2, False, None, "unknown_bot", "no bot named 'x'"),
    ],
)
def test_reply_round_trip(reply: Reply) -> None:
    """Replies, ok or not, decode to what was encoded."""
    assert protocol.decode_reply(protocol.encode_reply(reply)) == reply


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"v": 2, "id": 1, "cmd": "status", "args": {}}, "unsupported protocol version"),
        ({"v": 1, "id": -1, "cmd": "status", "args": {}}, "request id"),
        ({"v": 1, "id": True, "cmd": "status", "args": {}}, "request id"),
        ({"v": 1, "id": 1, "cmd": "rm -rf", "args": {}}, "unknown command"),
        ({"v": 1, "id": 1, "cmd": ["status"], "args": {}}, "unknown command"),
        ({"v": 1, "id": 1, "cmd": "status", "args": []}, "args must be a map"),
        ([1, 2, 3], "expected a map"),
    ],
)
def test_bad_requests_are_refused(payload: object, reason: str) -> None:
    """Schema violations raise ProtocolError naming the problem."""
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode_request(msgpack.packb(payload))


def test_oversized_request_is_refused_before_unpacking() -> None:
    """A frame over the limit is refused by its size alone."""
    with pytest.raises(ProtocolError, match="over the limit"):
        protocol.decode_request(b"\x00" * (protocol.MAX_CONTROL_FRAME_BYTES + 1))


def test_huge_declared_lengths_are_refused() -> None:
    """A header that claims a 4 GiB string is refused, not allocated."""
    with pytest.raises(ProtocolError):
        protocol.decode_request(b"\xdb\xff\xff\xff\xff" + b"x" * 10)


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_protocol_error(frame: bytes) -> None:
    """Whatever arrives, decoding either succeeds or raises ProtocolError, nothing else."""
    with contextlib.suppress(ProtocolError):
        protocol.decode_request(frame)


# Text from a fixed alphabet: what matters here is the type, and hypothesis's full unicode
# strategy builds a character table on first use (over a second when no `.hypothesis/` cache
# exists yet), which is what tripped its health check on every fresh clone.
_text = st.text(alphabet="abz09_ -\x00\u00e9\u2603\U0001d11e", max_size=20)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | _text
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=1000)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "v": st.just(1) | _values,
            "id": st.integers(0, 9) | _values,
            "cmd": _values,
            "args": _values,
        },
    )
)
def test_wrong_types_raise_only_protocol_error(payload: dict[str, object]) -> None:
    """Well-formed msgpack with wrong types is refused with ProtocolError, nothing else."""
    with contextlib.suppress(ProtocolError):
        protocol.decode_request(msgpack.packb(payload))


# ---------------------------------------------------------------- worker batches

TOKEN = b"t" * protocol.TOKEN_BYTES
GOOD_MESSAGES = [
    [protocol.HELLO, "echo", 3, 1234, "0.1.0"],
    [protocol.READY],
    [protocol.HEARTBEAT, 7],
    [protocol.METRIC, "queue_depth", 12.5, False],
    [protocol.METRIC, "jobs_done", 1, True],
    [protocol.LOG, "warning", "disk almost full"],
    [protocol.DROPPED, 40],
    [protocol.BYE, 9],
]


def test_batch_round_trip() -> None:
    """A batch of every worker message kind decodes to what was encoded."""
    frame = protocol.encode_batch(TOKEN, GOOD_MESSAGES)
    assert protocol.decode_batch(frame) == (TOKEN, GOOD_MESSAGES)


def test_commands_round_trip() -> None:
    """Supervisor-to-worker messages decode to what was encoded."""
    commands = [
        [protocol.CONFIG, {"pool_size": 4}],
        [protocol.DRAIN],
        [protocol.STOP],
        [protocol.ACK, 3],
    ]
    assert protocol.decode_commands(protocol.encode_commands(commands)) == commands


@pytest.mark.parametrize(
    ("batch", "reason"),
    [
        ([2, TOKEN, []], "a batch is"),
        ([protocol.VERSION, b"short", []], "a batch is"),
        ([protocol.VERSION, "t" * 16, []], "a batch is"),
        ([protocol.VERSION, TOKEN, {}], "a batch is"),
        ([protocol.VERSION, TOKEN, [[]]], "a message is"),
        ([protocol.VERSION, TOKEN, [[99]]], "unknown message kind"),
        ([protocol.VERSION, TOKEN, [[[4]]]], "unknown message kind"),
        ([protocol.VERSION, TOKEN, [[protocol.METRIC, "x", "12", False]]], "METRIC"),
        ([protocol.VERSION, TOKEN, [[protocol.METRIC, "", 1, False]]], "METRIC"),
        ([protocol.VERSION, TOKEN, [[protocol.METRIC, "x" * 201, 1, False]]], "METRIC"),
        ([protocol.VERSION, TOKEN, [[protocol.METRIC, "x", 1, 0]]], "METRIC"),
        ([protocol.VERSION, TOKEN, [[protocol.HELLO, "echo", -1, 5, "s"]]], "HELLO"),
        ([protocol.VERSION, TOKEN, [[protocol.LOG, ["info"], "x"]]], "LOG"),
        ([protocol.VERSION, TOKEN, [[protocol.LOG, "loud", "x"]]], "LOG"),
        ([protocol.VERSION, TOKEN, [[protocol.READY], [protocol.HEARTBEAT, -2]]], "HEARTBEAT"),
    ],
)
def test_bad_batches_are_refused(batch: object, reason: str) -> None:
    """A batch with anything off-schema raises ProtocolError naming the problem."""
    with pytest.raises(ProtocolError, match=reason):
        protocol.decode_batch(msgpack.packb(batch))


def test_oversized_batch_is_refused() -> None:
    """Frames over the limit, and batches over the message count, are refused."""
    with pytest.raises(ProtocolError, match="over the limit"):
        protocol.decode_batch(b"\x00" * (protocol.MAX_WORKER_FRAME_BYTES + 1))
    with pytest.raises(ProtocolError):
        protocol.decode_batch(
            protocol.encode_batch(TOKEN, [[protocol.READY]] * (protocol.MAX_BATCH + 1))
        )


def test_plugin_kinds_need_registering() -> None:
    """Kinds 32-63 are refused until a plugin registers a check for them."""
    frame = protocol.encode_batch(TOKEN, [[40, "key", True]])
    with pytest.raises(ProtocolError, match="unknown message kind"):
        protocol.decode_batch(frame)

    def check(m: list[object]) -> None:
        if len(m) != 3:
            raise ProtocolError("[40, key, hit]")

    protocol.register_kind(40, check)
    try:
        assert protocol.decode_batch(frame) == (TOKEN, [[40, "key", True]])
    finally:
        protocol._CHECKS.pop(40)
    with pytest.raises(ValueError, match="32-63"):
        protocol.register_kind(4, check)


@settings(max_examples=500)
@given(st.binary(max_size=1024))
def test_random_batches_raise_only_protocol_error(frame: bytes) -> None:
    """Random bytes either decode or raise ProtocolError; nothing else escapes."""
    with contextlib.suppress(ProtocolError):
        protocol.decode_batch(frame)
    with contextlib.suppress(ProtocolError):
        protocol.decode_commands(frame)


_kinds = st.sampled_from([*range(0, 9), 32, 64, 65, 66, 67]) | _values
_message = st.lists(_values, max_size=5).flatmap(lambda rest: _kinds.map(lambda k: [k, *rest]))


@settings(max_examples=1000)
@given(
    st.lists(st.just(protocol.VERSION) | _values, min_size=0, max_size=1),
    st.just(TOKEN) | st.binary(max_size=20) | _values,
    st.lists(_message | _values, max_size=6) | _values,
)
def test_wrong_types_in_batches_raise_only_protocol_error(
    version: list[object], token: object, messages: object
) -> None:
    """Well-formed msgpack with wrong types anywhere is refused with ProtocolError only."""
    frame = msgpack.packb([*version, token, messages])
    with contextlib.suppress(ProtocolError):
        protocol.decode_batch(frame)
    with contextlib.suppress(ProtocolError):
        protocol.decode_commands(msgpack.packb([*version, messages]))
