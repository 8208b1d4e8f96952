"""One-shot bots gate their dependents: a migration on the real PostgreSQL, then its reader."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.integration.harness import REPO, Supervisor, wait_until

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def table() -> Iterator[str]:
    name = f"migration_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')


def _fleet(table: str, value: str = "v1", fail: int = 0) -> str:
    return f"""
[bots.migrate]
kind = "oneshot"
module = "tests.bots.migration:migrate"
cwd = "{REPO}"
max_restarts = 1
backoff_initial_s = "100ms"
env = {{ MIGRATION_TABLE = "{table}", MIGRATION_VALUE = "{value}", MIGRATE_EXIT = "{fail}" }}

[bots.reader]
module = "tests.bots.migration:reader"
cwd = "{REPO}"
depends_on = ["migrate"]
stop_timeout_s = "2s"
env = {{ MIGRATION_TABLE = "{table}" }}
"""


def test_a_migration_gates_the_bot_that_reads_its_row(sup: Supervisor, table: str) -> None:
    """The reader starts only after the one-shot exited 0, and finds its row; status shows the
    run (exit code, duration); a reload re-runs the one-shot only when its spec changed."""
    sup.configure(_fleet(table))
    sup.start()
    wait_until(lambda: sup.bot("reader")["state"] == "running", timeout_s=60, what="the reader")
    wait_until(lambda: sup.bot("reader")["workers"][0]["metrics"].get("rows") is not None)
    assert sup.bot("reader")["workers"][0]["metrics"]["rows"] == 1  # the migration's row
    migrate = sup.bot("migrate")
    assert migrate["state"] == "succeeded"
    job = migrate["job"]
    assert (job["outcome"], job["exit_code"], job["runs"]) == ("succeeded", 0, 1)
    assert job["duration_s"] > 0
    assert job["last_run"]
    order = [(e["event"], e["bot"]) for e in sup.events({"worker_exited", "worker_spawned"})]
    assert order == [("worker_spawned", "migrate"), ("worker_exited", "migrate"),
                     ("worker_spawned", "reader")]  # fmt: skip

    assert sup.request("reload")["unchanged"] == ["migrate", "reader"]  # no second run
    sup.configure(_fleet(table, value="v2"))
    assert sup.request("reload")["restarted"] == ["migrate"]
    wait_until(lambda: sup.bot("migrate")["job"]["runs"] == 2, what="the second run")
    wait_until(lambda: sup.bot("migrate")["state"] == "succeeded", what="the second run to end")
    assert sup.bot("migrate")["job"]["runs"] == 2
    with psycopg.connect(DSN) as conn:
        values = [r[0] for r in conn.execute(f'SELECT value FROM "{table}" ORDER BY value')]
    assert values == ["v1", "v2"]


def test_a_failing_migration_keeps_its_dependent_waiting(sup: Supervisor, table: str) -> None:
    """A one-shot that exits 3 is restarted up to max_restarts, then fails; the bot that
    depends on it stays waiting, with the reason, and never starts a worker."""
    sup.configure(_fleet(table, fail=3))
    sup.start()
    wait_until(lambda: sup.bot("migrate")["state"] == "failed", timeout_s=60, what="failure")
    migrate = sup.bot("migrate")
    assert (migrate["job"]["exit_code"], migrate["job"]["runs"]) == (3, 2)  # once + 1 restart
    wait_until(lambda: sup.bot("reader")["waiting_reason"], what="the reason")
    reader = sup.bot("reader")
    assert reader["state"] == "waiting"
    assert reader["waiting_for"] == ["migrate"]
    assert reader["waiting_reason"].startswith("migrate failed: ")
    assert reader["workers"] == []
    assert "reader" not in {e["bot"] for e in sup.events("worker_spawned")}
