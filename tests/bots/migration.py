"""Test bots for one-shot gating on the real PostgreSQL.

`migrate`: a one-shot "migration": creates $MIGRATION_TABLE and inserts $MIGRATION_VALUE, then
exits 0 (or exits $MIGRATE_EXIT before touching anything). `reader`: a service that counts the
table's rows and reports them as the gauge `rows` (its SDK worker is ready after that).
"""

from __future__ import annotations

import os
import sys
import time

import psycopg

from supervisor.worker import Worker

DSN = os.environ.get("MIGRATION_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def migrate() -> int:
    code = int(os.environ.get("MIGRATE_EXIT", "0"))
    if code:
        print("migration failed on purpose", file=sys.stderr)
        return code
    table = os.environ["MIGRATION_TABLE"]
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (value text)')
        conn.execute(f'INSERT INTO "{table}" VALUES (%s)', (os.environ["MIGRATION_VALUE"],))
    return 0


def reader() -> None:
    table = os.environ["MIGRATION_TABLE"]
    with psycopg.connect(DSN, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    with Worker.connect_sync() as w:
        w.gauge("rows", row[0] if row else 0)
        w.ready()
        while not w.draining:
            time.sleep(0.05)
            w.beat()
