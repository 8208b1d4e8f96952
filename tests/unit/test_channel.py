"""The channel applies each frame to the link its token names, whatever the frame says."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from structlog.testing import capture_logs

from supervisor import __version__
from supervisor.daemon.channel import Channel
from supervisor.daemon.events import Events
from supervisor.wire import protocol

if TYPE_CHECKING:
    from supervisor.wire.transport import WorkerServer


class FakeServer:
    """Records what the channel sends back; never receives (handle() is fed directly)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, identity: bytes, payload: bytes) -> bool:
        self.sent.append((identity, payload))
        return True


def new_channel() -> Channel:
    return Channel(cast("WorkerServer", FakeServer()), Events())


def test_a_worker_cannot_speak_for_another_bots_slot() -> None:
    """A's token with a HELLO naming B's slot: READY and metrics land on A's link, not B's."""
    channel = new_channel()
    a, b = channel.open_link("a", 0), channel.open_link("b", 0)
    forged = [
        [protocol.HELLO, "b", 0, os.getpid(), __version__],
        [protocol.READY],
        [protocol.METRIC, "sent", 5, True],
    ]
    with capture_logs() as logs:
        channel.handle([b"worker-of-a", protocol.encode_batch(a.token, forged)])
    assert a.ready
    assert a.counters == {"sent": 5}
    assert not b.ready
    assert (b.messages, b.identity) == (0, None)
    assert [e["event"] for e in logs] == ["worker_hello_mismatch"]


def test_a_frame_with_an_unknown_token_reaches_no_link() -> None:
    """Without a token of ours, nothing applies: the frame is counted as bad_token."""
    channel = new_channel()
    link = channel.open_link("a", 0)
    frame = protocol.encode_batch(os.urandom(protocol.TOKEN_BYTES), [[protocol.READY]])
    channel.handle([b"stranger", frame])
    assert not link.ready
    assert link.messages == 0
    assert channel.rejected == {"bad_token": 1}
