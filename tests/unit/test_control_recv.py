"""The control socket's stall check (wire/transport.ControlServer.recv) on real ZeroMQ
sockets: while it cycles (wait, look directly, wait again) no request is lost or duplicated,
and a request whose wake-up was lost is still served, and counted."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq

from supervisor.wire import transport


@contextlib.asynccontextmanager
async def server_and_client() -> AsyncIterator[tuple[transport.ControlServer, zmq.Socket[bytes]]]:
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        context = transport.new_context()
        server = transport.ControlServer(context, Path(d) / "control")
        client = zmq.Context.instance().socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.connect(transport.endpoint(Path(d) / "control"))
        try:
            yield server, client
        finally:
            client.close()
            server.close()
            transport.close_context(context)


def test_requests_sent_across_many_stall_checks_all_arrive_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport, "_STALL_CHECK_S", 0.001)  # it cycles all the time

    async def main() -> list[bytes]:
        async with server_and_client() as (server, client):

            def send_all() -> None:
                for i in range(2000):
                    client.send_multipart([b"", str(i).encode()])

            sending = asyncio.get_running_loop().run_in_executor(None, send_all)
            got = [(await asyncio.wait_for(server.recv(), timeout=60))[1] for _ in range(2000)]
            await sending
            return got

    assert asyncio.run(main()) == [str(i).encode() for i in range(2000)]


def test_a_request_whose_wakeup_was_lost_is_still_served(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wake-up is taken away on purpose. While recv waits, the request is sent and, before
    the loop runs again, ZMQ_EVENTS is read on a shadow of the socket: that consumes the edge
    of libzmq's fd, so pyzmq's reader is never called (the lost wake-up the reports describe).
    Without the stall check this recv waits for ever (the test's 30 s bound ends it)."""
    monkeypatch.setattr(transport, "_STALL_CHECK_S", 0.2)

    async def main() -> tuple[bytes, int]:
        async with server_and_client() as (server, client):
            receiving = asyncio.ensure_future(server.recv())
            await asyncio.sleep(0.05)  # recv is waiting on pyzmq's future now
            assert not receiving.done()
            client.send_multipart([b"", b"ping"])
            shadow = zmq.Socket.shadow(server._sock.underlying)
            for _ in range(100_000):  # bounded; no await: the loop must not see the edge
                if shadow.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    break
            _, payload = await asyncio.wait_for(receiving, timeout=30)
            return payload, server.missed_wakeups

    assert asyncio.run(main()) == (b"ping", 1)
