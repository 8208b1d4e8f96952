"""A sync bot on the SDK's db_pool(): one query at a time, beating between them."""

from __future__ import annotations

import os
import signal
from types import FrameType

import psycopg
from psycopg_pool import PoolTimeout

from supervisor.worker import Worker

stopping = False


def _stop(signum: int, frame: FrameType | None) -> None:
    global stopping  # noqa: PLW0603
    stopping = True


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    with Worker.connect_sync() as w:
        if os.environ.get("DB_READY_FIRST"):
            w.ready()
        pool = None
        while pool is None and not stopping:
            try:
                pool = w.db_pool(wait_s=0.5, timeout=2.0)
            except TimeoutError:
                continue  # no grant yet: look at the stop flag, then wait on
        if pool is None:
            return
        w.ready()
        while not (stopping or w.draining):
            try:
                with pool.connection() as conn:
                    conn.execute("select pg_sleep(0.005)")
                w.count("queries")
            except (psycopg.Error, PoolTimeout):
                w.count("db_errors")
            w.beat()


if __name__ == "__main__":
    main()
