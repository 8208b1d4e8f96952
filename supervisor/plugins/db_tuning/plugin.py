"""The db_tuning plugin: one PostgreSQL connection budget for the whole fleet.

Every `interval_s`, and whenever a worker asks for a pool or confirms a
grant, the plugin reads the server (max_connections,
superuser_reserved_connections, and pg_stat_activity: other applications'
connections, the fleet's own by application_name "NAME:BOT:SLOT", idle in
transaction, lock waits), works out the budget and each worker's share
(db_budget.py, pure), and sends the changes: shrinks first; growth only
from room that the ledger and the server both show free. Workers report
their pools (db_wire.py); with `tuning` on, the budget follows the
connections each worker wants at its peak, so bots that wait get more.
Each change is a `db_pool_resized` event with its reason, and the last
ones are in `status`.

If PostgreSQL cannot be reached the plugin says `degraded`, keeps the
grants it gave (nothing grows), and tries again with backoff; once back it
reads the server again and sends every worker its grant anew.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from supervisor.config.fields import Table
from supervisor.plugins.base import Host, Metric, Plugin, WorkerRef
from supervisor.plugins.db_tuning import config as db_config
from supervisor.plugins.db_tuning.budget import Demand, Key, Ledger, Server, allocate, fleet_budget
from supervisor.plugins.db_tuning.config import DbConfig
from supervisor.wire.db import CHECKS, CONFIG_KEY, DB_ACK, DB_ERROR, DB_STATS, DB_WANT

log = structlog.get_logger("supervisor.db_tuning")

CHANGES_KEPT = 50
_QUERY_TIMEOUT_S = 5.0
_BACKOFF_S = (0.5, 10.0)
_NEED_SMOOTHING = 0.5  # weight of the newest peak in a worker's need

_SERVER_SQL = """
select current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       count(*) filter (where left(coalesce(application_name, ''), %(n)s) <> %(prefix)s
                          and pid <> pg_backend_pid())
from pg_stat_activity where backend_type = 'client backend'
"""
_FLEET_SQL = """
select application_name, count(*),
       count(*) filter (where state like 'idle in transaction%%'),
       count(*) filter (where wait_event_type = 'Lock')
from pg_stat_activity
where backend_type = 'client backend' and left(application_name, %(n)s) = %(prefix)s
group by application_name
"""


@dataclass
class WorkerPool:
    """What one worker's pool last reported."""

    size: int = 0
    in_use: int = 0
    waiting: int = 0
    wait_p95_ms: float = 0.0
    need: float | None = None  # smoothed peak of connections wanted at once
    requests: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class Observed:
    server: Server
    by_slot: dict[tuple[str, int], int]
    idle_in_transaction: dict[str, int]
    lock_waits: dict[str, int]


class DbTuning(Plugin):
    name = "db_tuning"
    subscribe = frozenset({"worker_exited", "supervisor_stopping"})
    message_kinds = CHECKS
    inherits = frozenset({"environment"})

    def __init__(self, config: DbConfig) -> None:
        super().__init__(config)
        self.config: DbConfig = config
        self.ledger = Ledger()
        self.pools: dict[Key, WorkerPool] = {}
        self.changes: deque[dict[str, Any]] = deque(maxlen=CHANGES_KEPT)
        self.server_state = "connecting"
        self.server_error = ""
        self.observed: Observed | None = None
        self.budget = 0
        self.grants_sent = 0
        self._wake = anyio.Event()
        self._host: Host | None = None
        self._failures = 0  # connection attempts failed in a row
        self._shutting_down = False
        self._prefix = config.pool.application_name + ":"

    @classmethod
    def configure(cls, table: Table) -> DbConfig:
        return db_config.configure(table)

    @classmethod
    def describe(cls, settings: Any) -> list[str]:
        return db_config.describe(settings)

    # ------------------------------------------------------------ the loop

    async def run(self, host: Host) -> None:
        import psycopg  # noqa: PLC0415  (a supervisor without this plugin never loads it)

        self._host = host
        self._announce(host)
        while True:
            try:
                await self._session(host, psycopg)
            except (psycopg.Error, OSError, TimeoutError) as e:
                self._failures += 1
                self._server_down(host, e)
                await anyio.sleep(min(_BACKOFF_S[1], _BACKOFF_S[0] * 2 ** (self._failures - 1)))
            else:
                return

    async def _session(self, host: Host, psycopg: Any) -> None:
        with anyio.fail_after(_QUERY_TIMEOUT_S):
            conn = await psycopg.AsyncConnection.connect(
                self.config.dsn,
                autocommit=True,
                application_name=f"{self.config.pool.application_name}-db_tuning",
                connect_timeout=max(1, round(self.config.pool.connect_timeout_s)),
            )
        async with conn:
            recovered = self.server_state == "degraded"
            await self._rebalance(host, conn)
            self.server_state, self.server_error = "ok", ""
            self._failures = 0  # the next outage starts its backoff from the shortest
            if recovered:
                host.emit("db_reachable", budget=self.budget)
                self._resend(host)
            while True:
                with anyio.move_on_after(self.config.interval_s):
                    await self._wake.wait()
                self._wake = anyio.Event()
                await self._rebalance(host, conn)

    def _announce(self, host: Host) -> None:
        """Ask workers that already have a pool what they hold: after a reload this is a
        new plugin, with an empty ledger, in a fleet whose pools are open."""
        for bot in sorted({w.bot for w in host.workers()}):
            host.send(bot, None, "config", {CONFIG_KEY: {"announce": True}})

    def _server_down(self, host: Host, error: BaseException) -> None:
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if self.server_state != "degraded":
            host.emit("db_unreachable", "warning", error=text)
        self.server_state, self.server_error = "degraded", text
        self.observed = None

    async def _rebalance(self, host: Host, conn: Any) -> None:
        if self._shutting_down:
            return
        self._forget_gone(host)
        with anyio.fail_after(_QUERY_TIMEOUT_S):
            self.observed = observed = await self._observe(conn)
        self.budget = budget = fleet_budget(
            observed.server, self.config.reserve, self.config.max_fleet_connections
        )
        demands = []
        for key, pool in sorted(self.pools.items()):
            bot = self.config.for_bot(key[0])
            need = pool.need if self.config.tuning else None
            demands.append(Demand(key, bot.weight, bot.settings.max_size, need))
        targets = allocate(budget, demands, self.ledger.held())
        plan = self.ledger.plan(budget, targets, observed.by_slot)
        for grant in (*plan.shrink, *plan.grow):
            self._send(host, grant.key, grant.size, grant.generation)
            self._record(host, grant.key, grant.previous, grant.size, len(demands))

    async def _observe(self, conn: Any) -> Observed:
        args = {"prefix": self._prefix, "n": len(self._prefix)}
        cursor = await conn.execute(_SERVER_SQL, args)
        max_connections, reserved, others = await cursor.fetchone()
        cursor = await conn.execute(_FLEET_SQL, args)
        by_slot: dict[tuple[str, int], int] = {}
        idle_tx: dict[str, int] = {}
        lock_waits: dict[str, int] = {}
        for app, count, idle, locked in await cursor.fetchall():
            bot, _, slot = app[len(self._prefix) :].rpartition(":")
            key = (bot, int(slot)) if slot.isdigit() else (app, -1)
            by_slot[key] = by_slot.get(key, 0) + count
            idle_tx[bot] = idle_tx.get(bot, 0) + idle
            lock_waits[bot] = lock_waits.get(bot, 0) + locked
        return Observed(Server(max_connections, reserved, others), by_slot, idle_tx, lock_waits)

    def _forget_gone(self, host: Host) -> None:
        live = {(w.bot, w.slot, w.pid) for w in host.workers()}
        for key in [k for k in self.pools if k not in live]:
            self._forget(key)

    def _forget(self, key: Key) -> None:
        self.pools.pop(key, None)
        self.ledger.forget(key)

    # ------------------------------------------------------------ grants

    def _send(self, host: Host, key: Key, size: int, generation: int) -> None:
        bot = self.config.for_bot(key[0]).settings
        # The pid: a grant meant for a worker that just exited must not be taken up by
        # the next process in its slot.
        grant = bot.wire() | {"generation": generation, "size": size, "dsn": self.config.dsn}
        grant["pid"] = key[2]
        host.send(key[0], key[1], "config", {CONFIG_KEY: grant})
        self.grants_sent += 1

    def _resend(self, host: Host) -> None:
        for grant in self.ledger.resend():
            if grant.key in self.pools:
                self._send(host, grant.key, grant.size, grant.generation)

    def _record(self, host: Host, key: Key, previous: int, size: int, workers: int) -> None:
        bot, slot, _ = key
        reason = self._reason(key, previous, size, workers)
        change: dict[str, Any] = {"bot": bot, "worker": slot, "previous": previous, "size": size}
        self.changes.append({"ts": round(time.time(), 3), **change, "reason": reason})
        host.emit("db_pool_resized", **change, reason=reason)

    def _reason(self, key: Key, previous: int, size: int, workers: int) -> str:
        bot, slot, _ = key
        pool = self.pools.get(key) or WorkerPool()
        sizes = f"pool {previous} -> {size}"
        if previous == 0:
            return f"{bot}[{slot}] asked for a pool; {workers} workers share {self.budget}; {sizes}"
        if size > previous and pool.wait_p95_ms > 0 and self.config.tuning:
            return f"bot {bot} waited {pool.wait_p95_ms:.0f} ms p95 for a connection; {sizes}"
        if size < previous and self.config.tuning and pool.need is not None:
            return (
                f"{bot}[{slot}] wants {pool.need:.1f} at its peak; {workers} workers "
                f"share {self.budget}; {sizes}"
            )
        return f"{workers} workers share a budget of {self.budget}; {sizes}"

    # ------------------------------------------------------------ what workers say

    def on_message(self, worker: WorkerRef, message: list[Any]) -> None:
        key = (worker.bot, worker.slot, worker.pid)
        kind = message[0]
        if kind == DB_WANT:
            self.pools.setdefault(key, WorkerPool())
            self.ledger.adopt(key, message[1], message[2])
            self._wake.set()
        elif kind == DB_ACK:
            if self.ledger.confirm(key, message[1], message[2]):
                self._wake.set()
        elif kind == DB_STATS and key in self.pools:
            self._stats(self.pools[key], message)
        elif kind == DB_ERROR and key in self.pools:
            self.pools[key].last_error = message[1]
            if self._host is not None:  # the SDK sends an error once, not per failure
                self._host.emit(
                    "db_pool_error", "warning", bot=worker.bot, worker=worker.slot,
                    error=message[1],
                )  # fmt: skip

    def _stats(self, pool: WorkerPool, message: list[Any]) -> None:
        pool.size, pool.in_use, pool.waiting, peak, p95, requests, errors = message[1:]
        pool.wait_p95_ms = float(p95)
        pool.requests += requests
        pool.errors = errors
        if pool.need is None:
            pool.need = float(peak)
        else:
            pool.need += _NEED_SMOOTHING * (peak - pool.need)

    async def on_event(self, event: str, fields: dict[str, Any]) -> None:
        if event == "supervisor_stopping":
            self._shutting_down = True  # workers leave one by one: no point in regranting
            return
        key = (str(fields.get("bot")), int(fields.get("worker", -1)), int(fields.get("pid") or 0))
        if key in self.pools:
            self._forget(key)
            self._wake.set()

    # ------------------------------------------------------------ what it shows

    def status(self) -> dict[str, Any]:
        seen = self.observed
        server = seen.server if seen else None
        return {
            "summary": self._summary(),
            "reason": f"PostgreSQL unreachable: {self.server_error}" if self.degraded else "",
            "degraded": self.degraded,
            "server": self.server_state,
            "server_error": self.server_error,
            "environment": self.config.environment,
            "tuning": self.config.tuning,
            "budget": self.budget,
            "granted": self.ledger.total(),
            "grants_sent": self.grants_sent,
            "fleet_connections": sum(seen.by_slot.values()) if seen else None,
            "max_connections": server.max_connections if server else None,
            "superuser_reserved": server.superuser_reserved if server else None,
            "others": server.others if server else None,
            "reserve": self.config.reserve,
            "bots": self._bots_status(),
            "changes": list(self.changes)[-10:],
        }

    @property
    def degraded(self) -> bool:
        return self.server_state == "degraded"

    def _summary(self) -> str:
        """One line for `supervisor status`."""
        if self.server_state == "degraded":
            return f"PostgreSQL unreachable: {self.server_error}"
        seen = self.observed
        open_now = sum(seen.by_slot.values()) if seen else 0
        text = f"budget {self.budget}, granted {self.ledger.total()}, {open_now} open"
        return text + (f"; last: {self.changes[-1]['reason']}" if self.changes else "")

    def _bots_status(self) -> dict[str, dict[str, Any]]:
        bots: dict[str, dict[str, Any]] = {}
        held = self.ledger.held()
        seen = self.observed
        for key, pool in sorted(self.pools.items()):
            b = bots.setdefault(key[0], _bot_row(seen, key[0]))
            b["workers"] += 1
            b["granted"] += held.get(key, 0)
            b["in_use"] += pool.in_use
            b["waiting"] += pool.waiting
            b["wait_p95_ms"] = max(b["wait_p95_ms"], pool.wait_p95_ms)
            b["pool_errors"] += pool.errors
            b["last_error"] = pool.last_error or b["last_error"]
        return bots

    def metrics(self) -> list[Metric]:
        bots = self._bots_status()
        return [
            Metric("supervisor_db_budget", "gauge", "The fleet's connection budget.",
                   (({}, self.budget),)),
            Metric("supervisor_db_granted", "gauge", "Connections granted, by bot.",
                   tuple(({"bot": n}, b["granted"]) for n, b in bots.items())),
            Metric("supervisor_db_pool_errors", "counter", "Pool errors workers reported.",
                   tuple(({"bot": n}, b["pool_errors"]) for n, b in bots.items())),
        ]  # fmt: skip


def _bot_row(seen: Observed | None, bot: str) -> dict[str, Any]:
    connections = sum(n for (b, _), n in seen.by_slot.items() if b == bot) if seen else None
    return {
        "workers": 0,
        "granted": 0,
        "connections": connections,
        "in_use": 0,
        "waiting": 0,
        "wait_p95_ms": 0.0,
        "idle_in_transaction": seen.idle_in_transaction.get(bot, 0) if seen else None,
        "lock_waits": seen.lock_waits.get(bot, 0) if seen else None,
        "pool_errors": 0,
        "last_error": "",
    }
