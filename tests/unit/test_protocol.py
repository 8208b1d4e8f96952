"""Control messages: round trips, and every malformed frame is a ProtocolError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor import protocol
from supervisor.errors import ProtocolError
from supervisor.protocol import Reply, Request


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


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
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
