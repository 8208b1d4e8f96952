"""The SDK's BudgetPool on the real PostgreSQL: psycopg_pool held to the size it is allowed.

BudgetPool overrides psycopg_pool internals; these tests are what tell a psycopg_pool
upgrade that broke them.
"""

from __future__ import annotations

import asyncio
import secrets

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from supervisor.sdk.dbpool import BudgetPool
from supervisor.sdk.worker import Worker
from tests.integration.harness import wait_until
from tests.services import PostgresService


@pytest.fixture
def dsn(postgres_service: PostgresService) -> str:
    return postgres_service.dsn


def server_count(dsn: str, app: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where application_name = %s", [app]
        ).fetchone()
    return int(row[0]) if row else 0


async def _shrink_scenario(dsn: str, app: str) -> list[int]:
    changes: list[int] = []
    pool = BudgetPool(
        dsn, lambda: changes.append(pool.open_connections), kwargs={"application_name": app}
    )
    assert pool.closed  # nothing opens before the first grant
    await pool.allow(3, 0)
    held = [await pool.getconn() for _ in range(3)]
    with pytest.raises(PoolTimeout):  # a fourth would exceed the grant: it waits instead
        await pool.getconn(timeout=0.2)
    assert pool.open_connections == 3
    assert server_count(dsn, app) == 3

    await pool.allow(1, 0)  # all 3 are in use: they close as they come back
    assert pool.open_connections == 3
    for conn in held[1:]:
        await pool.putconn(conn)
    assert pool.open_connections == 1
    wait_until(lambda: server_count(dsn, app) == 1, what="the backends of the closed connections")

    await pool.putconn(held[0])
    await pool.allow(2, 0)  # growth again, on demand
    a, b = await pool.getconn(), await pool.getconn()
    assert pool.open_connections == 2
    await pool.putconn(a)
    await pool.putconn(b)
    await pool.allow(0, 0)  # paused: idle connections close at once, none opens
    assert pool.open_connections == 0
    with pytest.raises(PoolTimeout):
        await pool.getconn(timeout=0.2)
    await pool.close()
    return changes


def test_a_smaller_grant_closes_connections_as_they_are_returned(dsn: str) -> None:
    """Growth stops at the grant; a cut closes idle connections now and busy ones when
    returned (each close is reported, so the worker can confirm); 0 pauses the pool."""
    app = f"svpool{secrets.token_hex(3)}"
    changes = asyncio.run(_shrink_scenario(dsn, app))
    assert 1 in changes  # the moment it got down to a grant of 1 was reported
    assert server_count(dsn, app) == 0


def test_standalone_bots_get_a_plain_pool(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    """Outside a supervisor, db_pool() of the async and the sync SDK is a working pool."""
    for name in ("SUPERVISOR_WORKERS", "SUPERVISOR_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with Worker.connect_sync() as w:
        pool = w.db_pool(dsn)
        with pool.connection() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        pool.close()

    async def use() -> tuple[int, ...] | None:
        async with Worker.connect() as w:
            pool = await w.db_pool(dsn)
            async with pool.connection() as conn:
                row = await (await conn.execute("select 1")).fetchone()
            await pool.close()
            return row

    assert asyncio.run(use()) == (1,)
