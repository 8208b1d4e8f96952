"""Each kind of need is checked by the supervisor itself against a real service."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import pytest

from supervisor.config.needs import parse_need
from supervisor.daemon.dependencies import answers


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reply_with(status: int) -> Callable[[anyio.abc.SocketStream], Awaitable[None]]:
    async def reply(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive(1024)
            await stream.send(f"HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n".encode())

    return reply


@pytest.mark.parametrize(
    ("url", "up"),
    [
        ("redis://127.0.0.1:6379", True),
        ("postgresql://postgres@127.0.0.1/test", True),
        ("tcp://127.0.0.1:5432", True),
        ("redis://127.0.0.1:{closed}", False),
        ("postgresql://postgres@127.0.0.1:{closed}/test", False),
        ("tcp://127.0.0.1:{closed}", False),
    ],
)
def test_services_that_answer_and_that_do_not(url: str, up: bool) -> None:
    """Redis PING, PostgreSQL SELECT 1 and a TCP connect say up; a closed port says down."""
    assert anyio.run(answers, parse_need(url.format(closed=_closed_port()))) is up


@pytest.mark.parametrize(("status", "up"), [(200, True), (302, True), (503, False)])
def test_http_status(status: int, up: bool) -> None:
    """http:// is up on 2xx and 3xx only."""
    assert anyio.run(_check_http, status) is up


async def _check_http(status: int) -> bool:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _reply_with(status))
        answered = await answers(parse_need(f"http://127.0.0.1:{port}/healthz"))
        tg.cancel_scope.cancel()
    return answered
