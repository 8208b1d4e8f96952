"""The SDK's PostgreSQL pool: psycopg_pool, held to this worker's share of the fleet's budget.

    async with Worker.connect() as w:
        pool = await w.db_pool()             # waits until the supervisor grants connections
        async with pool.connection() as conn:
            await conn.execute("select 1")

`db_pool()` asks the db_tuning plugin for a budget (DB_WANT) and returns
once the first grant came: not one connection is opened before. Each grant
(a CONFIG message) resizes the pool live. A smaller grant closes idle
connections at once and the others as they are returned; when the pool is
down to the grant it confirms (DB_ACK), and only then does the supervisor
let other workers grow. Twice a second the pool's statistics go to the
supervisor (DB_STATS), and its latest connection error too (DB_ERROR).

`BudgetPool` is psycopg_pool's `AsyncConnectionPool` with three of its
internals overridden (growth, taking connections back, timing getconn);
pyproject pins psycopg_pool to the minor versions this was checked with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from supervisor.wire.db import CONFIG_KEY, DB_ACK, DB_ERROR, DB_STATS, DB_WANT, MAX_ERROR_TEXT

if TYPE_CHECKING:
    from supervisor.sdk.link import PoolLink, Settings

STATS_EVERY_S = 0.5
_WAITS_KEPT = 4096


class _Budget:
    """What the async and sync pools share: the grant, and what they report."""

    _nconns: int
    _pool: Any  # psycopg_pool's idle connections
    _waiting: Any  # psycopg_pool's waiting clients

    def _init_budget(self, on_change: Callable[[], None]) -> None:
        self.allowed = 0
        self.waits_s: deque[float] = deque(maxlen=_WAITS_KEPT)
        self.peak = 0  # most connections wanted at once (in use + waiting) since last read
        self.requests = 0  # getconn calls since last read
        self.errors = 0
        self.last_error = ""
        self._on_change = on_change

    @property
    def open_connections(self) -> int:
        """Connections open or being opened (psycopg_pool's own count)."""
        return self._nconns

    @property
    def in_use(self) -> int:
        return self._nconns - len(self._pool)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _asked(self) -> float:
        self.peak = max(self.peak, self.in_use + self.waiting + 1)
        self.requests += 1
        return time.monotonic()

    def _failed(self, error: Exception) -> None:
        self.errors += 1
        text = str(error).strip()
        self.last_error = text.splitlines()[0] if text else repr(error)

    def stats_message(self) -> list[Any]:
        """DB_STATS since the last call (see db_wire.py)."""
        waits = sorted(self.waits_s)
        self.waits_s.clear()
        p95_ms = 1000 * waits[int(0.95 * (len(waits) - 1))] if waits else 0.0
        peak, self.peak = self.peak, self.in_use + self.waiting
        requests, self.requests = self.requests, 0
        return [DB_STATS, self.open_connections, self.in_use, self.waiting, peak,
                round(p95_ms, 3), requests, self.errors]  # fmt: skip


class BudgetPool(_Budget, AsyncConnectionPool[AsyncConnection[Any]]):
    """A pool that never holds more connections than `allowed` (0 until the first grant)."""

    def __init__(self, conninfo: str, on_change: Callable[[], None], **kwargs: Any) -> None:
        self._init_budget(on_change)
        super().__init__(conninfo, min_size=0, max_size=1, open=False, **kwargs)

    async def allow(self, size: int, min_size: int) -> None:
        """Hold at most `size` connections from now on; close idle ones above it now."""
        self.allowed = size
        if self.closed:  # not opened before the first grant (its lock is made by open())
            if size == 0:
                return
            await self.open(wait=False)
        await self.resize(min(min_size, size), max(size, 1))
        extra = []
        async with self._lock:
            while self._nconns > self.allowed and self._pool:
                extra.append(self._pool.pop())
                self._nconns -= 1
        for conn in extra:
            await self._close_connection(conn)
        self._on_change()

    async def getconn(self, timeout: float | None = None) -> AsyncConnection[Any]:  # noqa: ASYNC109
        started = self._asked()
        try:
            conn = await super().getconn(timeout)
        except PoolTimeout as e:
            self._failed(e)
            raise
        self.waits_s.append(time.monotonic() - started)
        return conn

    # ------------------------------------------------------------ psycopg_pool internals

    def _maybe_grow_pool(self) -> None:
        if self._nconns < self.allowed:
            super()._maybe_grow_pool()

    async def _add_to_pool(self, conn: AsyncConnection[Any]) -> None:
        async with self._lock:
            over = self._nconns > self.allowed
            if over:
                self._nconns -= 1
        if not over:
            await super()._add_to_pool(conn)
            return
        await self._close_connection(conn)
        self._on_change()

    async def _connect(self, timeout: float | None = None) -> AsyncConnection[Any]:  # noqa: ASYNC109
        try:
            return await super()._connect(timeout)
        except Exception as e:
            self._failed(e)
            raise


class PoolClient:
    """One worker's side of the budget: asks, applies grants, confirms, reports."""

    def __init__(self, link: PoolLink, conninfo: str | None, kwargs: dict[str, Any]) -> None:
        self._link = link
        self._conninfo = conninfo
        self._kwargs = kwargs
        self._generation = -1
        self._unconfirmed = -1  # generation applied but not yet down to its size
        self._granted = asyncio.Event()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reported_error = ""
        self.pool: BudgetPool | None = None
        self._tasks = [
            asyncio.create_task(self._apply_grants(), name="supervisor-db-grants"),
            asyncio.create_task(self._report(), name="supervisor-db-stats"),
        ]
        self._send([DB_WANT, 0, 0])

    async def wait_granted(self) -> BudgetPool:
        await self._granted.wait()
        assert self.pool is not None
        return self.pool

    def on_config(self, values: dict[str, Any]) -> None:
        """A CONFIG message came (called by the SDK); grants are applied in order, in a task."""
        grant = values.get(CONFIG_KEY)
        if isinstance(grant, dict) and grant.get("announce"):
            held = self.pool.allowed if self.pool is not None else 0
            self._send([DB_WANT, held, max(0, self._generation)])
        elif isinstance(grant, dict) and grant.get("pid", os.getpid()) == os.getpid():
            self._queue.put_nowait(grant)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.pool is not None:
            await self.pool.close()

    async def _apply_grants(self) -> None:
        while True:
            grant = await self._queue.get()
            try:
                await self._apply(grant)
            except Exception as e:  # a bad grant must not end the task that applies the next
                print(f"supervisor.dbpool: cannot apply {grant}: {e!r}", file=sys.stderr)

    async def _apply(self, grant: dict[str, Any]) -> None:
        generation = int(grant.get("generation", 0))
        if generation < self._generation:
            return  # an older grant overtaken by a newer one
        self._generation = generation
        pool = self.pool or self._make_pool(grant)
        self._unconfirmed = generation
        await pool.allow(int(grant.get("size", 0)), int(grant.get("min_size", 0)))
        if pool.allowed > 0:
            self._granted.set()

    def _make_pool(self, grant: dict[str, Any]) -> BudgetPool:
        conninfo, kwargs = pool_arguments(grant, self._link.settings, self._conninfo)
        self.pool = BudgetPool(conninfo, self._confirm_if_done, **kwargs, **self._kwargs)
        return self.pool

    def _confirm_if_done(self) -> None:
        pool = self.pool
        if pool is not None and self._unconfirmed >= 0 and pool.open_connections <= pool.allowed:
            self._send([DB_ACK, self._unconfirmed, pool.open_connections])
            self._unconfirmed = -1

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            pool = self.pool
            if pool is None:
                continue
            self._link.report(pool.stats_message())  # periodic: may be shed
            if pool.last_error != self._reported_error:
                self._reported_error = pool.last_error
                if pool.last_error:
                    self._send([DB_ERROR, pool.last_error[:MAX_ERROR_TEXT]])

    def _send(self, message: list[Any]) -> None:
        self._link.send_plugin_message(message)


def pool_arguments(
    grant: dict[str, Any], settings: Settings, conninfo: str | None
) -> tuple[str, dict[str, Any]]:
    """The conninfo and pool arguments a grant asks for (connections named NAME:BOT:SLOT)."""
    app = f"{grant.get('application_name', 'supervisor')}:{settings.bot}:{settings.slot}"
    kwargs: dict[str, Any] = {
        "application_name": app[:63],
        "connect_timeout": max(1, round(float(grant.get("connect_timeout_s", 10)))),
    }
    statement_ms = int(grant.get("statement_timeout_ms", 0))
    if statement_ms:
        kwargs["options"] = f"-c statement_timeout={statement_ms}"
    return conninfo or str(grant.get("dsn", "")), {
        "kwargs": kwargs,
        "name": app,
        "max_idle": float(grant.get("max_idle_s", 600)),
        "max_lifetime": float(grant.get("max_lifetime_s", 3600)),
    }


async def standalone_pool(conninfo: str | None, kwargs: dict[str, Any]) -> AsyncConnectionPool[Any]:
    """Outside a supervisor: a plain pool of the "dev" preset's size, opened now."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo or "", min_size=0, max_size=2, open=False, **kwargs
    )
    await pool.open()
    return pool
