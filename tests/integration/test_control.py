"""The control socket treats every frame as untrusted: bad ones are counted and dropped."""

from __future__ import annotations

import msgpack
import zmq

from supervisor.wire import protocol
from tests.integration.harness import Supervisor, wait_until


def test_malformed_control_frames_are_counted_and_refused(sup: Supervisor) -> None:
    """Garbage, wrong versions, unknown commands and bad arguments get error replies or are
    dropped; the supervisor keeps answering and counts what it rejected."""
    sup.configure('[bots.s]\ncommand = ["sleep", "1000"]\n')
    sup.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(f"ipc://{sup.run_dir}/control")
    try:
        frames = [
            b"\xc1 not msgpack",
            msgpack.packb({"v": 99, "id": 1, "cmd": "status", "args": {}}),
            msgpack.packb({"v": 1, "id": 2, "cmd": "format_disk", "args": {}}),
            msgpack.packb([1, 2, 3]),
            msgpack.packb({"v": 1, "id": 4, "cmd": ["status"], "args": {}}),
        ]
        for frame in frames:
            sock.send(frame)
            reply = protocol.decode_reply(sock.recv())
            assert (reply.ok, reply.error_code) == (False, "bad_request")
        sock.send(protocol.encode_request(protocol.Request(3, "scale", {"bot": 7, "count": "x"})))
        reply = protocol.decode_reply(sock.recv())
        assert (reply.id, reply.ok, reply.error_code) == (3, False, "unknown_bot")
        sock.send(b"x" * (protocol.MAX_CONTROL_FRAME_BYTES + 1))  # libzmq drops this peer
    finally:
        sock.close()
        ctx.term()
    status = sup.status()
    assert status["supervisor"]["control"]["rejected"] == {"control": 5}
    assert status["bots"]["s"]["running"] == 1
    # Logged at the 1st, 2nd, 4th, ... rejection: a flood of bad frames cannot flood the log.
    logged = wait_until(lambda: len(e := sup.events("frame_rejected")) == 3 and e)
    assert [e["count"] for e in logged] == [1, 2, 4]
