"""A socket left open with a message queued for a peer that never comes does not keep the
context (and so the supervisor) from ending: close_context bounds it by the close linger."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import zmq

from supervisor.wire.transport import close_context, endpoint


def test_a_forgotten_socket_with_a_queued_message_does_not_hang_the_end() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = (
        zmq.Context()
    )  # the supervisor's is its asyncio subclass
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, -1)  # as a socket nobody configured: wait for ever
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        sock.connect(endpoint(Path(d) / "nobody"))  # nothing will ever listen there
        sock.send(b"queued for no one")
        ended = threading.Event()
        closer = threading.Thread(target=lambda: (close_context(context), ended.set()))
        closer.start()
        closer.join(timeout=60)  # a bound for a broken close_context, not a speed target
        assert ended.is_set(), "the context was still waiting for its forgotten socket"
        assert sock.closed
