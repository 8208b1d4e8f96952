"""Checks of a bot's `needs`, done by the supervisor itself, and the loop that repeats them.

Each check is a connect plus the protocol's own ping where it has one, bounded by
`CHECK_TIMEOUT_S`; any error means "down". `NeedsWatch` runs rounds of checks for one bot:
when asked (a worker exited, or the bot starts) and, while something is down, again after
the gate's backoff. Each round goes through `policy.dependency_gate.observe`; the bot gets
the result through `on_round`, and the events are emitted here, once per transition.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

import anyio
import anyio.abc

from supervisor.config.needs import Need
from supervisor.daemon.events import Events
from supervisor.policy import dependency_gate
from supervisor.policy.dependency_gate import Gate, Observed

CHECK_TIMEOUT_S = 1.0
_PING = b"*1\r\n$4\r\nPING\r\n"


async def answers(need: Need, timeout_s: float = CHECK_TIMEOUT_S) -> bool:
    """Does the service answer? Never raises: an error of any kind is a no."""
    check = _CHECKS[need.scheme]
    try:
        with anyio.fail_after(timeout_s):
            return await check(need)
    except Exception:  # a check that fails in any way says "down", never crashes the loop
        return False


async def _redis(need: Need) -> bool:
    async with await anyio.connect_tcp(need.host, need.port) as stream:
        await stream.send(_PING)
        reply = await stream.receive(64)
    return reply.startswith((b"+PONG", b"-NOAUTH"))  # NOAUTH: up, it wants a password


async def _postgresql(need: Need) -> bool:
    import psycopg  # noqa: PLC0415 (lazily: only bots that need PostgreSQL pay for it)

    conn = await psycopg.AsyncConnection.connect(need.url, connect_timeout=1)
    async with conn:
        await conn.execute("SELECT 1")
    return True


async def _tcp(need: Need) -> bool:
    stream = await anyio.connect_tcp(need.host, need.port)
    await stream.aclose()
    return True


async def _http(need: Need) -> bool:
    parts = urlsplit(need.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream: anyio.abc.ByteStream
    if need.scheme == "https":
        tls = ssl.create_default_context()
        stream = await anyio.connect_tcp(need.host, need.port, ssl_context=tls)
    else:
        stream = await anyio.connect_tcp(need.host, need.port)
    async with stream:
        await stream.send(f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n".encode())
        head = await stream.receive(256)
    fields = head.split(b"\r\n", 1)[0].split()
    return len(fields) >= 2 and fields[1].isdigit() and 200 <= int(fields[1]) < 400


_CHECKS = {"redis": _redis, "postgresql": _postgresql, "tcp": _tcp, "http": _http, "https": _http}


async def check_all(needs: tuple[Need, ...]) -> dict[str, bool]:
    """One round: every need checked at once; url -> answered, in config order."""
    result = dict.fromkeys((n.url for n in needs), False)

    async def one(need: Need) -> None:
        result[need.url] = await answers(need)

    async with anyio.create_task_group() as tg:
        for need in needs:
            tg.start_soon(one, need)
    return result


class NeedsWatch:
    """Rounds of checks for one bot: on request, and with backoff while something is down."""

    def __init__(
        self,
        bot: str,
        needs: tuple[Need, ...],
        events: Events,
        on_round: Callable[[Observed], None],
    ) -> None:
        self.bot = bot
        self.needs = needs
        self.gate = Gate()
        self._events = events
        self._on_round = on_round
        self._asked = anyio.Event()

    def ask(self) -> None:
        """Check soon (a worker exited)."""
        self._asked.set()

    async def check_now(self) -> None:
        """One round, now: the result reaches the bot before this returns. When it finds a need
        down, `run` is woken, so its backoff starts (it may be waiting with no timeout)."""
        await self._round()
        if self.gate.down:
            self._asked.set()

    async def _round(self) -> None:
        seen = dependency_gate.observe(self.gate, await check_all(self.needs))
        self.gate = seen.gate
        for url in seen.went_down:
            self._events.emit("dependency_down", "warning", bot=self.bot, need=url)
        for url in seen.came_up:
            self._events.emit("dependency_up", bot=self.bot, need=url)
        self._on_round(seen)

    async def run(self) -> None:
        """Forever: wait to be asked (or for the backoff while down), then check."""
        while True:
            delay = dependency_gate.retry_delay_s(self.gate) if self.gate.down else float("inf")
            with anyio.move_on_after(delay):
                await self._asked.wait()
            self._asked = anyio.Event()  # replaced here only, so `run` never waits on a stale one
            await self._round()
