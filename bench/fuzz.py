"""Hostile frames at a real supervisor's real sockets; then: alive, answering, fleet whole?

    .venv/bin/python -m bench.fuzz                  # 1,000,000 frames (the default)
    .venv/bin/python -m bench.fuzz --frames 100000

Three sender processes share the count: on the control socket, DEALER peers (a fresh routing
identity every few hundred frames: many identities) and REQ peers (each waits for its answer);
on the workers socket, DEALER peers. The frames: random bytes, msgpack of the wrong shape,
wrong protocol versions, batches with bad tokens, multi-part messages, frames over the size
limit (libzmq drops such a peer; the sender reconnects) and, on the control socket, valid
pings in between (the flood is also a rate-limit test). A fourth process holds slowloris
connections on the monitor's HTTP port (a byte of header every second) and checks that
/healthz answers on a new connection meanwhile.

Afterwards it checks the supervisor is alive, answers `ping` and `status`, every worker is the
same process as before the storm, prints the drops by reason (workers socket: undecodable,
too_large, bad_token, frames; control: admission drops and rejected frames) and the
supervisor's RSS before, at its peak, and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import psutil
import zmq

from bench.chaos import Soak
from supervisor.config.rundir import control_path
from supervisor.wire import protocol
from supervisor.wire.transport import endpoint

CONFIG = """[supervisor]
run_dir = "run"
log_format = "json"
log_level = "info"

[bots.sdk]
module = "tests.bots.sdk:main"
cwd = "{repo}"
workers = 4
readiness = "sdk"
env = {{ SDK_MODE = "idle" }}
stop_timeout_s = "2s"

[plugins.monitor]
listen = "127.0.0.1:{port}"
"""


def _memory(soak: Soak) -> dict[str, Any]:
    status = soak.request("status", 30)
    return dict(status["supervisor"].get("memory") or {}) if status else {}


def _every_tenth(timeline: list[tuple[float, int]]) -> list[list[float]]:
    """About ten (seconds, MiB) points of the RSS over the run, the last one included."""
    step = max(1, len(timeline) // 10)
    points = [*timeline[::step], timeline[-1]] if timeline else []
    return [[round(t, 1), round(rss / 2**20, 1)] for t, rss in points]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hostile(rng: random.Random, worker_socket: bool) -> list[bytes]:
    """One hostile message (its frames) of a random sort."""
    sort = rng.randrange(9)
    if sort == 0:
        return [rng.randbytes(rng.randrange(0, 200))]
    if sort == 1:  # wrong version
        if worker_socket:
            return [msgpack.packb([rng.choice([0, 2, 99, -1]), b"t" * 16, [[3, 1]]])]
        return [msgpack.packb({"v": rng.choice([0, 2, 99]), "id": 1, "cmd": "status"})]
    if sort == 2:  # a well-formed frame with a bad token / bad command
        if worker_socket:
            return [protocol.encode_batch(rng.randbytes(16), [[protocol.HEARTBEAT, 1]])]
        return [msgpack.packb({"v": 1, "id": 1, "cmd": "rm", "args": {}})]
    if sort == 3:  # wrong shape
        return [msgpack.packb(rng.choice([[1, 2, 3], {"a": [None] * 50}, "x" * 300, 2**63]))]
    if sort == 4:  # several frames in one message
        return [b"a", b"b", b"c"][: rng.randrange(2, 4)]
    if sort == 5 and rng.random() < 0.01:  # over the limit: the peer is dropped by libzmq
        return [b"\0" * (protocol.MAX_WORKER_FRAME_BYTES * 4 + 1)]
    if sort == 6:  # truncated msgpack claiming a huge container
        return [b"\xdd\xff\xff\xff\xff" + rng.randbytes(8)]
    if sort == 7 and not worker_socket:  # a valid request among the junk
        return [protocol.encode_request(protocol.Request(rng.randrange(1, 2**31), "ping", {}))]
    return [rng.randbytes(rng.randrange(1, 40))]


def dealer_flood(address: str, frames: int, worker_socket: bool, seed: int, out: Any) -> None:
    rng = random.Random(seed)
    ctx = zmq.Context()
    sent = identities = 0
    sock = None
    try:
        while sent < frames:
            if sock is None or sent % 500 == 0:  # a new peer: many identities
                if sock is not None:
                    sock.close(linger=0)
                sock = ctx.socket(zmq.DEALER)
                sock.setsockopt(zmq.ROUTING_ID, rng.randbytes(rng.randrange(1, 32)))
                sock.setsockopt(zmq.SNDHWM, 10_000)
                sock.connect(address)
                identities += 1
            parts = hostile(rng, worker_socket)
            if not worker_socket:
                parts = [b"", *parts]  # the control socket's DEALER envelope
            try:
                sock.send_multipart(parts, zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                time.sleep(0.001)  # the peer is behind: back off (pacing, not a wait)
            while sock.poll(0):
                sock.recv_multipart()
    finally:
        if sock is not None:
            sock.close(linger=0)
        ctx.term()
    out.put(("dealer-workers" if worker_socket else "dealer-control", sent, identities))


def req_peers(address: str, frames: int, seed: int, out: Any) -> None:
    """REQ peers: each sends one hostile request and waits (bounded) for its answer."""
    rng = random.Random(seed)
    ctx = zmq.Context()
    sent = answered = 0
    sock = None
    try:
        while sent < frames:
            if sock is None:
                sock = ctx.socket(zmq.REQ)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(address)
            sock.send_multipart(hostile(rng, worker_socket=False)[:1])
            sent += 1
            if sock.poll(1000):
                sock.recv_multipart()
                answered += 1
            else:  # no answer (an oversize frame drops the peer): a new REQ
                sock.close()
                sock = None
    finally:
        if sock is not None:
            sock.close()
        ctx.term()
    out.put(("req-control", sent, answered))


def slowloris(port: int, connections: int, seconds: float, out: Any) -> None:
    held: list[socket.socket] = []
    for _ in range(connections):
        with contextlib.suppress(OSError):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\n")
            held.append(s)
    end, healthy, tries = time.monotonic() + seconds, 0, 0
    while time.monotonic() < end:
        for s in held:
            with contextlib.suppress(OSError):
                s.sendall(b"X-a: b\r\n")
        tries += 1
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 5) as c:
            c.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            if c.recv(64).startswith(b"HTTP/1.1 200"):
                healthy += 1
        time.sleep(1.0)  # the slowloris pace
    for s in held:
        s.close()
    out.put(("slowloris", len(held), f"healthz {healthy}/{tries}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--slowloris", type=int, default=200, help="connections held")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="the supervisor traces Python's allocations"
    )
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    port = _free_port()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()}")
    soak = Soak(4, "default")
    (soak.dir / "supervisor.toml").write_text(CONFIG.format(repo=repo, port=port))
    soak.workers, soak.bot_name = 4, "sdk"
    if args.tracemalloc:  # status then says how much of the RSS is Python's own objects
        soak.env["PYTHONTRACEMALLOC"] = "1"
    result: dict[str, Any] = {"frames_asked": args.frames}
    try:
        soak.start()
        assert soak.proc is not None
        me = psutil.Process(soak.proc.pid)
        before = {w["slot"]: w["pid"] for w in soak.bot()["workers"]}
        rss0 = me.memory_info().rss
        control = endpoint(control_path(soak.run_dir))
        workers = endpoint(soak.run_dir / "workers")
        out: Any = multiprocessing.Queue()
        share = args.frames // 10
        senders = [
            multiprocessing.Process(target=dealer_flood, args=(workers, share * 6, True, 1, out)),
            multiprocessing.Process(target=dealer_flood, args=(control, share * 4, False, 2, out)),
            multiprocessing.Process(target=req_peers, args=(control, 2000, 3, out)),
        ]
        loris = multiprocessing.Process(target=slowloris, args=(port, args.slowloris, 20, out))
        start = time.monotonic()
        for p in [*senders, loris]:
            p.start()
        peak, timeline = rss0, [(0.0, rss0)]
        while any(p.is_alive() for p in senders):
            with contextlib.suppress(psutil.Error):
                timeline.append((time.monotonic() - start, me.memory_info().rss))
                peak = max(peak, timeline[-1][1])
            time.sleep(0.5)  # sampling pace
        result["send_s"] = round(time.monotonic() - start, 1)
        loris.join(timeout=60)
        for _ in range(4):
            name, sent, extra = out.get(timeout=30)
            result[name] = {"sent": sent, "extra": extra}
        result["frames_sent"] = sum(
            result[k]["sent"] for k in ("dealer-workers", "dealer-control", "req-control")
        )
        # Drained: the rejected counts stop moving.
        last: Any = None
        for _ in range(120):
            status = soak.request("status", 30)
            # Not `admitted`: our own status requests move it, so it never stands still.
            control = status and status["supervisor"]["control"]
            now = control and (
                status["supervisor"]["workers"],
                control["rejected"],
                control["dropped"],
            )
            if now and now == last:
                break
            last = now
            timeline.append((time.monotonic() - start, me.memory_info().rss))
            time.sleep(1.0)  # polling pace while it drains
        # The trimmer gives freed heap back once the counters stand still (daemon/memory.py).
        trims = False
        with contextlib.suppress(TimeoutError):
            trims = soak.until(lambda: _memory(soak).get("trims", 0) > 0, 30, "a trim") >= 0
        timeline.append((time.monotonic() - start, me.memory_info().rss))
        status = soak.request("status", 30)
        result["alive"] = soak.proc.poll() is None
        result["ping"] = bool(soak.request("ping", 10))
        bot = status["bots"]["sdk"]
        result["fleet_whole"] = {w["slot"]: w["pid"] for w in bot["workers"]} == before and bot[
            "running"
        ] == 4
        result["drops"] = {
            "workers_socket": status["supervisor"]["workers"]["rejected"],
            "control_socket": status["supervisor"]["control"],
        }
        result["rss_mib"] = {
            "before": round(rss0 / 2**20, 1),
            "peak": round(peak / 2**20, 1),
            "after": round(me.memory_info().rss / 2**20, 1),
            "trimmed": trims,
            "over_time": _every_tenth(timeline),
        }
        result["supervisor_memory"] = _memory(soak)
        soak.request("shutdown")
        result["shutdown_exit"] = soak.proc.wait(timeout=120)
        result["leftovers"] = len(soak.leftovers())
    finally:
        soak.close()
    result["load_after"] = [round(x, 1) for x in os.getloadavg()]
    print(json.dumps(result), flush=True)
    ok = result.get("alive") and result.get("ping") and result.get("fleet_whole")
    sys.exit(0 if ok and not result.get("leftovers") else 1)


if __name__ == "__main__":
    main()
