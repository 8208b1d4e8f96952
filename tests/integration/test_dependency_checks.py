"""Each kind of need is checked by the supervisor itself against a real service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import pytest

from supervisor.config.needs import parse_need
from supervisor.daemon.dependencies import answers
from tests.services import PostgresService, RedisService, free_port


def _reply_with(status: int) -> Callable[[anyio.abc.SocketStream], Awaitable[None]]:
    async def reply(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive(1024)
            await stream.send(f"HTTP/1.0 {status} X\r\nContent-Length: 0\r\n\r\n".encode())

    return reply


@pytest.mark.parametrize(
    ("url", "up"),
    [
        ("{redis}", True),
        ("{postgresql}", True),
        ("tcp://{postgres_address}", True),
        ("redis://127.0.0.1:{closed}", False),
        ("postgresql://postgres@127.0.0.1:{closed}/test", False),
        ("tcp://127.0.0.1:{closed}", False),
    ],
)
def test_services_that_answer_and_that_do_not(
    url: str, up: bool, request: pytest.FixtureRequest
) -> None:
    """Redis PING, PostgreSQL SELECT 1 and a TCP connect say up; a closed port says down."""
    places = {"closed": str(free_port())}
    if "{redis}" in url:
        redis: RedisService = request.getfixturevalue("redis_service")
        places["redis"] = f"redis://{redis.host}:{redis.port}"
    if "postgres" in url and "closed" not in url:
        pg: PostgresService = request.getfixturevalue("postgres_service")
        places |= {"postgresql": pg.url, "postgres_address": f"{pg.host}:{pg.port}"}
    assert anyio.run(answers, parse_need(url.format_map(places))) is up


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
