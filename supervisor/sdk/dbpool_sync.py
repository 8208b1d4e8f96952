"""db_pool() for sync bots: psycopg_pool's ConnectionPool, held to this worker's grant.

    with Worker.connect_sync() as w:
        pool = w.db_pool()                   # blocks (beating) until the first grant
        w.ready()
        while not w.draining:
            with pool.connection() as conn:
                conn.execute("select 1")
            w.beat()                         # grants are applied and confirmed here

The same protocol as dbpool.py, with the sync SDK's rule: nothing happens
behind the bot's back. Grants are applied in `beat()` (in `poll_control()`),
and so are confirmations and statistics; psycopg_pool's own threads only
open and close connections. A bot that beats rarely confirms a cut late,
which only delays other workers' growth, never breaks the budget.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psycopg import Connection
from psycopg_pool import ConnectionPool, PoolTimeout

from supervisor.sdk.dbpool import STATS_EVERY_S, _Budget, pool_arguments
from supervisor.wire.db import CONFIG_KEY, DB_ACK, DB_ERROR, DB_WANT, MAX_ERROR_TEXT

if TYPE_CHECKING:
    from supervisor.sdk.link import SyncPoolLink

_POLL_S = 0.05


class SyncBudgetPool(_Budget, ConnectionPool[Connection[Any]]):
    """A pool that never holds more connections than `allowed` (0 until the first grant)."""

    def __init__(self, conninfo: str, on_change: Callable[[], None], **kwargs: Any) -> None:
        self._init_budget(on_change)
        super().__init__(conninfo, min_size=0, max_size=1, open=False, **kwargs)

    def allow(self, size: int, min_size: int) -> None:
        """Hold at most `size` connections from now on; close idle ones above it now."""
        self.allowed = size
        if self.closed:
            if size == 0:
                return
            self.open(wait=False)
        self.resize(min(min_size, size), max(size, 1))
        extra = []
        with self._lock:
            while self._nconns > self.allowed and self._pool:
                extra.append(self._pool.pop())
                self._nconns -= 1
        for conn in extra:
            self._close_connection(conn)
        self._on_change()

    def getconn(self, timeout: float | None = None) -> Connection[Any]:
        started = self._asked()
        try:
            conn = super().getconn(timeout)
        except PoolTimeout as e:
            self._failed(e)
            raise
        self.waits_s.append(time.monotonic() - started)
        return conn

    def _maybe_grow_pool(self) -> None:
        if self._nconns < self.allowed:
            super()._maybe_grow_pool()

    def _add_to_pool(self, conn: Connection[Any]) -> None:
        with self._lock:
            over = self._nconns > self.allowed
            if over:
                self._nconns -= 1
        if not over:
            super()._add_to_pool(conn)
            return
        self._close_connection(conn)
        self._on_change()

    def _connect(self, timeout: float | None = None) -> Connection[Any]:
        try:
            return super()._connect(timeout)
        except Exception as e:
            self._failed(e)
            raise


class SyncPoolClient:
    """One sync worker's side of the budget; driven by the SDK's beat()."""

    def __init__(self, link: SyncPoolLink, conninfo: str | None, kwargs: dict[str, Any]) -> None:
        self._link = link
        self._conninfo = conninfo
        self._kwargs = kwargs
        self._generation = -1
        self._unconfirmed = -1
        self._next_stats = time.monotonic() + STATS_EVERY_S
        self._reported_error = ""
        self.pool: SyncBudgetPool | None = None
        link.send_plugin_message([DB_WANT, 0, 0])

    def wait_granted(self, wait_s: float | None = None) -> SyncBudgetPool:
        """Beat and poll until the first grant with at least one connection came."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while self.pool is None or self.pool.allowed == 0:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"no connection granted within {wait_s:g} s")
            self._link.beat()
            self._link.wait_commands(_POLL_S)
        return self.pool

    def on_config(self, values: dict[str, Any]) -> None:
        grant = values.get(CONFIG_KEY)
        if isinstance(grant, dict) and grant.get("announce"):
            held = self.pool.allowed if self.pool is not None else 0
            self._link.send_plugin_message([DB_WANT, held, max(0, self._generation)])
            return
        if not isinstance(grant, dict) or grant.get("pid", os.getpid()) != os.getpid():
            return  # not for this process (it was for the one before it in this slot)
        if int(grant.get("generation", 0)) < self._generation:
            return
        self._generation = int(grant.get("generation", 0))
        if self.pool is None:
            conninfo, kwargs = pool_arguments(grant, self._link.settings, self._conninfo)
            # Closes happen in psycopg_pool's threads too: confirmations wait for tick().
            self.pool = SyncBudgetPool(conninfo, lambda: None, **kwargs, **self._kwargs)
        self._unconfirmed = self._generation
        self.pool.allow(int(grant.get("size", 0)), int(grant.get("min_size", 0)))
        self.tick()

    def tick(self) -> None:
        """From beat(): confirm a grant once the pool is down to it; statistics, errors."""
        pool = self.pool
        if pool is None:
            return
        if self._unconfirmed >= 0 and pool.open_connections <= pool.allowed:
            self._link.send_plugin_message([DB_ACK, self._unconfirmed, pool.open_connections])
            self._unconfirmed = -1
        if time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + STATS_EVERY_S
            self._link.report(pool.stats_message())  # periodic: may be shed
            if pool.last_error != self._reported_error:
                self._reported_error = pool.last_error
                if pool.last_error:
                    self._link.send_plugin_message([DB_ERROR, pool.last_error[:MAX_ERROR_TEXT]])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def standalone_pool(conninfo: str | None, kwargs: dict[str, Any]) -> ConnectionPool[Any]:
    """Outside a supervisor: a plain pool of the "dev" preset's size, opened now."""
    pool: ConnectionPool[Any] = ConnectionPool(
        conninfo or "", min_size=0, max_size=2, open=False, **kwargs
    )
    pool.open()
    return pool
