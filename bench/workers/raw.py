"""The raw pyzmq + msgpack ceiling: a bare PUSH process and a bare PULL process, no SDK.

    python bench/workers/raw.py pull ENDPOINT COUNT   # binds; prints {"messages", "seconds"}
    python bench/workers/raw.py push ENDPOINT COUNT PER_FRAME   # then waits for EOF on stdin

The pusher packs each frame with msgpack (PER_FRAME == 1: one message; more: a
msgpack array of PER_FRAME messages) and sends it; the puller unpacks every
frame and counts the messages in it, timing from the first frame to the one
that brings the count to COUNT (the messages after the first frame over that
time is the rate). A message has the SDK's metric shape,
[4, "sent", 1, true].

The pusher keeps its socket open until its stdin closes (the harness closes it
once the puller has everything): a socket closed right after its last send can
lose its final messages even with linger set (zeromq/libzmq#4660; it happened
here, one run in a few). The puller gives up after 10 s without a frame and
reports what it got.
"""

from __future__ import annotations

import json
import sys
import time

import msgpack
import zmq

MESSAGE = [4, "sent", 1, True]


def pull(endpoint: str, count: int) -> None:
    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.bind(endpoint)
    print("bound", flush=True)
    unpackb, recv = msgpack.unpackb, sock.recv
    first = unpackb(recv())
    t0 = time.perf_counter()
    first_count = got = len(first) if type(first[0]) is list else 1
    t_last = t0
    try:
        while got < count:
            data = unpackb(recv())
            got += len(data) if type(data[0]) is list else 1
            t_last = time.perf_counter()
    except zmq.Again:
        print(f"raw.py: {count - got} of {count} messages never came", file=sys.stderr)
    seconds = t_last - t0
    # The rate's numerator: the messages that came after the clock started.
    print(json.dumps({"messages": got - first_count, "seconds": seconds}), flush=True)
    sock.close(linger=0)


def push(endpoint: str, count: int, per_frame: int) -> None:
    context = zmq.Context()
    sock = context.socket(zmq.PUSH)
    sock.connect(endpoint)
    packb, send = msgpack.packb, sock.send
    if per_frame == 1:
        for _ in range(count):
            send(packb(MESSAGE))
    else:
        batch = [MESSAGE] * per_frame
        for _ in range(count // per_frame):
            send(packb(batch))
    sys.stdin.read()  # until the harness says the puller has it all
    sock.close(linger=0)
    context.term()


if __name__ == "__main__":
    role, endpoint, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "pull":
        pull(endpoint, count)
    else:
        push(endpoint, count, int(sys.argv[4]))
