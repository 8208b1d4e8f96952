"""db_worker: a DB-bound bot; takes jobs from a PostgreSQL table through the SDK's db_pool().

Run by the supervisor as `module = "bots.db_worker:main"`, with the db_tuning plugin on (the
pool waits for its grant). Each worker runs DB_CONCURRENCY tasks; a task claims one job
(`FOR UPDATE SKIP LOCKED`), does DB_WORK_S of work inside the database (pg_sleep) in the same
transaction, marks it done. Another task reports the backlog.

Environment:

    DB_TABLE         supervisor_jobs   the jobs table (created if missing)
    DB_QUEUE         the bot's name    the jobs of this bot are the rows with this queue
    DB_CONCURRENCY   4                 jobs in flight per worker
    DB_WORK_S        0.02              seconds of pg_sleep per job
    DB_POLL_S        0.1               wait when there is no job
    DB_STATS_FILE    (unset)           on exit, append one JSON line: jobs done, pool waits
    DB_STATS_FROM    0                 record pool waits from this unix time on (benchmarks)

Reports: gauges `backlog` (jobs not done in its queue) and `db_inflight`, counters
`jobs_done` and `db_errors`; READY once the first grant came. A pool error (PostgreSQL
down, a timeout) is counted, said on stderr once per kind of error, and retried: the
worker lives through a restart of the server. A drain ends it after the jobs in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from supervisor.worker import AsyncWorker, NullWorker, Worker

_RETRY_S = 0.2
_BACKLOG_EVERY_S = 0.25


def ensure_table(conn: psycopg.Connection[Any], table: str) -> None:
    """The jobs table (for tests and benchmarks, which fill it)."""
    conn.execute(
        sql.SQL(
            "create table if not exists {} (id bigserial primary key, queue text not null, "
            "done boolean not null default false)"
        ).format(sql.Identifier(table))
    )
    conn.execute(
        sql.SQL("create index if not exists {} on {} (queue, id) where not done").format(
            sql.Identifier(f"{table}_pending"), sql.Identifier(table)
        )
    )


class DbWorker:
    def __init__(self, w: AsyncWorker | NullWorker, env: dict[str, str]) -> None:
        self.w = w
        self.table = sql.Identifier(env.get("DB_TABLE", "supervisor_jobs"))
        self.queue = env.get("DB_QUEUE") or env.get("SUPERVISOR_BOT", "db_worker")
        self.concurrency = int(env.get("DB_CONCURRENCY", "4"))
        self.work_s = float(env.get("DB_WORK_S", "0.02"))
        self.poll_s = float(env.get("DB_POLL_S", "0.1"))
        self.stats_file = env.get("DB_STATS_FILE", "")
        self.stats_from = float(env.get("DB_STATS_FROM", "0"))
        self.stop = asyncio.Event()
        self.done = 0
        self.waits_ms: list[float] = []
        self.inflight = 0
        self._said: set[str] = set()

    async def run(self) -> None:
        granted = asyncio.create_task(self.w.db_pool(timeout=5.0))
        stopping = asyncio.create_task(self.stopping())
        await asyncio.wait({granted, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not granted.done():  # stopped before the supervisor granted a connection
            granted.cancel()
            return
        pool = granted.result()
        self.w.ready()
        tasks = [asyncio.create_task(self.jobs(pool)) for _ in range(self.concurrency)]
        tasks.append(asyncio.create_task(self.backlog(pool)))
        await stopping
        for task in tasks[-1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.write_stats()

    async def stopping(self) -> None:
        while not (self.stop.is_set() or self.w.draining):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.1)
        self.stop.set()

    async def jobs(self, pool: AsyncConnectionPool[Any]) -> None:
        claim = sql.SQL(
            "with j as (select id from {t} where queue = %s and not done order by id "
            "limit 1 for update skip locked) "
            "update {t} set done = true from j where {t}.id = j.id returning {t}.id"
        ).format(t=self.table)
        while not self.stop.is_set():
            try:
                if not await self.one_job(pool, claim):
                    await asyncio.sleep(self.poll_s)
            except (psycopg.Error, PoolTimeout) as e:
                self.failed(e)
                await asyncio.sleep(_RETRY_S)

    async def one_job(self, pool: AsyncConnectionPool[Any], claim: sql.Composed) -> bool:
        asked = time.monotonic()
        async with pool.connection() as conn:
            if time.time() >= self.stats_from:
                self.waits_ms.append((time.monotonic() - asked) * 1000)
            self.inflight += 1
            try:
                row = await (await conn.execute(claim, [self.queue])).fetchone()
                if row is not None and self.work_s > 0:
                    await conn.execute("select pg_sleep(%s)", [self.work_s])
            finally:
                self.inflight -= 1
        if row is None:
            return False
        self.done += 1
        self.w.count("jobs_done")
        return True

    async def backlog(self, pool: AsyncConnectionPool[Any]) -> None:
        count = sql.SQL("select count(*) from {} where queue = %s and not done").format(self.table)
        while True:
            try:
                async with pool.connection() as conn:
                    row = await (await conn.execute(count, [self.queue])).fetchone()
                self.w.gauge("backlog", row[0] if row else 0)
            except (psycopg.Error, PoolTimeout) as e:
                self.failed(e)
            self.w.gauge("db_inflight", self.inflight)
            await asyncio.sleep(_BACKLOG_EVERY_S)

    def failed(self, error: BaseException) -> None:
        self.w.count("db_errors")
        kind = type(error).__name__
        if kind not in self._said:
            self._said.add(kind)
            print(f"db_worker: {kind}: {str(error).strip()[:300]}", flush=True)

    def write_stats(self) -> None:
        if not self.stats_file:
            return
        line = {"queue": self.queue, "done": self.done, "waits_ms": self.waits_ms}
        with open(self.stats_file, "a") as f:
            f.write(json.dumps(line) + "\n")


async def amain() -> None:
    async with Worker.connect() as w:
        bot = DbWorker(w, dict(os.environ))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bot.stop.set)
        await bot.run()


def main() -> None:
    asyncio.run(amain())


if __name__ == "__main__":
    main()
