"""The db_tuning plugin against a real PostgreSQL: the session's (tests/services.py; trust auth,
db "test"), and for the restart test a private server, never the machine's own.

Each test has its own jobs table and its own application_name prefix, so the fleet's
connections are told apart from everything else on the server by name.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from bots.db_worker import ensure_table
from tests.integration.harness import REPO, Supervisor, wait_until
from tests.services import (
    PostgresService,
    PrivatePostgres,
    ServiceUnavailable,
    close,
    start_private_postgres,
)


class Fleet:
    """A test's jobs table and application_name prefix, and a sampler of pg_stat_activity."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        tag = secrets.token_hex(3)
        self.table = f"sv_jobs_{tag}"
        self.app = f"svt{tag}"
        self.conn = psycopg.connect(dsn, autocommit=True)
        ensure_table(self.conn, self.table)
        self.samples: list[int] = []
        self.sample_errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def push(self, n: int, queue: str = "dbw") -> None:
        self.conn.execute(
            sql.SQL("insert into {} (queue) select %s from generate_series(1, %s)").format(
                sql.Identifier(self.table)
            ),
            [queue, n],
        )

    def done(self, queue: str = "dbw") -> int:
        row = self.conn.execute(
            sql.SQL("select count(*) from {} where queue = %s and done").format(
                sql.Identifier(self.table)
            ),
            [queue],
        ).fetchone()
        return int(row[0]) if row else 0

    def connections(self, conn: psycopg.Connection[tuple[int]]) -> int:
        prefix = self.app + ":"
        row = conn.execute(
            # Parallel query workers carry their leader's application_name, but are no
            # connections: they come out of max_worker_processes, not max_connections.
            "select count(*) from pg_stat_activity "
            "where backend_type = 'client backend' and left(application_name, %s) = %s",
            [len(prefix), prefix],
        ).fetchone()
        return int(row[0]) if row else 0

    def start_sampler(self, every_s: float = 0.05) -> None:
        """Count the fleet's backends every 50 ms, on a connection of its own, in a thread."""

        def sample() -> None:
            conn: psycopg.Connection[tuple[int]] | None = None
            while not self._stop.wait(every_s):
                try:
                    conn = conn or psycopg.connect(self.dsn, autocommit=True, connect_timeout=2)
                    self.samples.append(self.connections(conn))
                except psycopg.Error as e:  # while the server restarts
                    self.sample_errors.append(str(e))
                    conn = None

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop_sampler(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def close(self) -> None:
        self.stop_sampler()
        with contextlib.suppress(psycopg.Error):
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(self.table)))
            conn.close()
        with contextlib.suppress(psycopg.Error):
            self.conn.close()

    def config(self, bot: str, plugin: str) -> str:
        return (
            f"{bot}\n[plugins.db_tuning]\n"
            f'dsn = "{self.dsn}"\n'
            f'application_name = "{self.app}"\n'
            f"{plugin}\n"
        )

    def bot_env(self, **env: str) -> str:
        values = {"PYTHONPATH": str(REPO), "DB_TABLE": self.table, **env}
        return "{ " + ", ".join(f'{k} = "{v}"' for k, v in values.items()) + " }"


@pytest.fixture
def fleet(postgres_service: PostgresService) -> Iterator[Fleet]:
    f = Fleet(postgres_service.dsn)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def own_postgres(postgres_service: PostgresService) -> Iterator[PrivatePostgres]:
    """A server the test may stop and restart: the session's when it is private, else one of
    the test's own (the machine's PostgreSQL serves other people's tests)."""
    if isinstance(postgres_service.private, PrivatePostgres):
        yield postgres_service.private
        return
    try:
        server = start_private_postgres()
    except ServiceUnavailable as e:
        pytest.skip(str(e))
    try:
        yield server
    finally:
        close(PostgresService(server.host, server.port, server))


def test_autoscaling_1_to_10_and_back_never_exceeds_a_budget_of_20(
    sup: Supervisor, fleet: Fleet
) -> None:
    """A DB-bound bot autoscaled 1 -> 10 -> 1 under a fleet budget of 20: a sampler of
    pg_stat_activity every 50 ms never sees more than 20 of the fleet's connections, no
    worker is refused ("too many clients"), running workers shrink before new ones grow,
    and every job is done."""
    bot = f"""
[bots.dbw]
module = "bots.db_worker:main"
env = {fleet.bot_env(DB_CONCURRENCY="4", DB_WORK_S="0.005")}
stop_timeout_s = 5
[bots.dbw.scale]
min = 1
max = 10
metric = "backlog"
aggregation = "max"
target = 100
interval_s = "0.5s"
scale_down_window_s = "2s"
up_limit = {{ workers = 10, percent = 1000, period_s = "1s" }}
"""
    plugin = 'environment = "prod"\nreserve = 0\nmax_fleet_connections = 20\ninterval_s = "0.25s"'
    sup.configure(fleet.config(bot, plugin))
    fleet.start_sampler()
    sup.start()
    sup.wait_running("dbw", 1)
    wait_until(lambda: fleet.connections(fleet.conn) > 0, what="the first worker to connect")
    jobs = 12_000
    fleet.push(jobs)

    wait_until(lambda: sup.bot("dbw")["running"] == 10, timeout_s=60, what="10 workers")
    wait_until(lambda: fleet.done() == jobs, timeout_s=90, what="every job done")
    wait_until(lambda: sup.bot("dbw")["desired"] == 1, timeout_s=60, what="the scale-down")
    sup.wait_running("dbw", 1, timeout_s=30)
    fleet.stop_sampler()

    print(f"samples={len(fleet.samples)} most={max(fleet.samples)}")
    assert len(fleet.samples) > 100, "the sampler hardly ran"
    assert max(fleet.samples) <= 20, f"over the budget: {max(fleet.samples)} connections"
    assert max(fleet.samples) > 10, "the pools never used the budget: the test proves nothing"
    resized = sup.events("db_pool_resized")
    assert any(e["size"] < e["previous"] for e in resized), "no worker was asked to shrink"
    assert "too many clients" not in sup.log()
    db = sup.status()["plugins"]["db_tuning"]
    assert db["state"] == "running"
    assert db["budget"] == 20
    assert db["granted"] <= 20


def test_a_postgresql_restart_is_survived(sup: Supervisor, own_postgres: PrivatePostgres) -> None:
    """PostgreSQL goes away under a working fleet (stopped, then started, so that the outage
    can be watched; then restarted in one step): the plugin says degraded, workers report
    pool errors and are not restarted; once it is back the budgets are granted again and
    the jobs go on."""
    fleet = Fleet(own_postgres.dsn)
    bot = f"""
[bots.dbw]
module = "bots.db_worker:main"
workers = 2
env = {fleet.bot_env(DB_CONCURRENCY="2", DB_WORK_S="0.01")}
"""
    plugin = 'reserve = 0\nmax_fleet_connections = 6\nmax_size = 3\ninterval_s = "0.25s"'
    try:
        _survive_restarts(sup, fleet, own_postgres, fleet.config(bot, plugin))
    finally:
        fleet.close()


def _survive_restarts(sup: Supervisor, fleet: Fleet, server: PrivatePostgres, config: str) -> None:
    sup.configure(config)
    sup.start()
    pids = sup.wait_running("dbw", 2)
    fleet.push(1_000_000)
    wait_until(lambda: fleet.done() > 100, timeout_s=30, what="jobs being done")

    fleet.conn.close()
    server.stop()
    try:
        plugin_state = lambda: sup.status()["plugins"]["db_tuning"]  # noqa: E731
        wait_until(lambda: plugin_state()["state"] == "degraded", what="the plugin degraded")
        wait_until(lambda: sup.events("db_pool_error"), timeout_s=30, what="a pool error")
    finally:
        server.start()

    fleet.conn = psycopg.connect(fleet.dsn, autocommit=True)
    wait_until(lambda: plugin_state()["state"] == "running", timeout_s=30, what="recovery")
    assert sup.events("db_unreachable")
    assert sup.events("db_reachable")
    before = fleet.done()
    wait_until(lambda: fleet.done() > before + 100, timeout_s=60, what="jobs done after it")
    assert sup.pids("dbw") == pids, "a worker was restarted"
    status = plugin_state()
    assert status["budget"] == 6
    assert status["bots"]["dbw"]["pool_errors"] > 0
    assert status["bots"]["dbw"]["granted"] == 6

    # And the one-step restart an operator types: the fleet goes on working after it.
    fleet.conn.close()
    server.restart()
    fleet.conn = psycopg.connect(fleet.dsn, autocommit=True)
    before = fleet.done()
    wait_until(lambda: fleet.done() > before + 100, timeout_s=60, what="jobs done after it")
    assert sup.pids("dbw") == pids, "a worker was restarted"
    wait_until(lambda: plugin_state()["state"] == "running", timeout_s=30, what="recovery")
    assert "too many clients" not in sup.log()


@pytest.mark.parametrize("tuning", [True, False])
def test_budget_moves_to_the_bot_that_waits(sup: Supervisor, fleet: Fleet, tuning: bool) -> None:
    """Two bots share a budget of 8: with tuning, the one with 8 jobs in flight gets most of
    it, each change with its reason in status and on the events stream; without tuning the
    split stays equal."""
    heavy = fleet.bot_env(DB_CONCURRENCY="8", DB_WORK_S="0.02", DB_QUEUE="heavy")
    light = fleet.bot_env(DB_CONCURRENCY="1", DB_WORK_S="0.02", DB_QUEUE="light")
    bots = f"""
[bots.heavy]
module = "bots.db_worker:main"
env = {heavy}
[bots.light]
module = "bots.db_worker:main"
env = {light}
"""
    plugin = (
        f'environment = "prod"\nreserve = 0\nmax_fleet_connections = 8\n'
        f'interval_s = "0.25s"\ntuning = {"true" if tuning else "false"}'
    )
    sup.configure(fleet.config(bots, plugin))
    fleet.push(100_000, "heavy")
    fleet.push(100_000, "light")
    sup.start()
    sup.wait_running("heavy", 1)
    sup.wait_running("light", 1)
    db = lambda: sup.status()["plugins"]["db_tuning"]  # noqa: E731
    wait_until(lambda: fleet.done("heavy") > 200, timeout_s=30, what="heavy jobs done")
    granted = lambda bot: db()["bots"][bot]["granted"]  # noqa: E731
    if tuning:
        wait_until(lambda: granted("heavy") >= 6, timeout_s=30, what="heavy to get most")
        assert granted("light") <= 2
        reasons = [e["reason"] for e in sup.events("db_pool_resized") if e["bot"] == "heavy"]
        assert any("waited" in r and "ms p95 for a connection; pool" in r for r in reasons)
        assert any("waited" in c["reason"] for c in db()["changes"])
    else:
        wait_until(lambda: fleet.done("light") > 200, timeout_s=30, what="light jobs done")
        assert (granted("heavy"), granted("light")) == (4, 4)
    assert db()["granted"] <= 8


def test_a_sync_bot_gets_its_share_and_gives_back(sup: Supervisor, fleet: Fleet) -> None:
    """A sync bot on db_pool(): its first worker opens 4 warm connections (the whole budget);
    scaled to 2, it closes 2 in beat() and confirms before the second opens any."""
    bot = f"""
[bots.dbs]
module = "tests.bots.db_sync:main"
env = {fleet.bot_env()}
"""
    plugin = 'environment = "high-performance"\nreserve = 0\nmax_fleet_connections = 4'
    sup.configure(fleet.config(bot, plugin))
    fleet.start_sampler()
    sup.start()
    sup.wait_running("dbs", 1)
    wait_until(lambda: fleet.connections(fleet.conn) == 4, what="4 warm connections")
    out = sup.cli("scale", "dbs", "2")
    assert out.returncode == 0, out.stderr
    sup.wait_running("dbs", 2)
    db = lambda: sup.status()["plugins"]["db_tuning"]  # noqa: E731
    wait_until(lambda: db()["bots"]["dbs"]["granted"] == 4, what="both workers granted")
    wait_until(lambda: fleet.connections(fleet.conn) == 4, what="2 + 2 warm connections")
    fleet.stop_sampler()
    assert max(fleet.samples) <= 4
    sizes = [(e["worker"], e["previous"], e["size"]) for e in sup.events("db_pool_resized")]
    first_grant = next(i for i, (w, previous, _) in enumerate(sizes) if (w, previous) == (1, 0))
    # The cut was asked for before the grant (in one step to 2, or through 3 when the first
    # rebalance sees the new worker's demand before it has a pool).
    first_cut = next(i for i, (w, previous, size) in enumerate(sizes) if w == 0 and size < previous)
    assert first_cut < first_grant, sizes
    # The split follows demand: 2 + 2, or 3 + 1 when the first worker's smoothed demand is the
    # larger (seen on a loaded machine); either way both hold a share and the budget is whole.
    held = {w: size for w, _, size in sizes}
    assert min(held[0], held[1]) >= 1, sizes
    assert held[0] + held[1] == 4, sizes
    working = lambda: all(w["metrics"].get("queries", 0) > 0 for w in sup.bot("dbs")["workers"])  # noqa: E731
    wait_until(working, what="both workers running queries")


def test_check_shows_the_effective_pool_settings(sup: Supervisor) -> None:
    """`supervisor check` prints the preset with every override applied, per bot."""
    sup.config_path.write_text(
        '[supervisor]\nrun_dir = "run"\nenvironment = "staging"\n'
        '[bots.a]\ncommand = ["sleep", "60"]\n'
        "[plugins.db_tuning]\nmax_fleet_connections = 20\n"
        "[plugins.db_tuning.bots.a]\nweight = 3\nmax_size = 4\n"
    )
    out = sup.cli("check")
    assert out.returncode == 0, out.stderr
    assert "plugin db_tuning: environment=staging" in out.stdout
    assert "max_fleet_connections=20" in out.stdout
    assert "(all bots) pool=1..5 connect_timeout=10s" in out.stdout
    assert "a          weight=3 pool=1..4" in out.stdout


def test_other_applications_connections_come_off_the_budget(sup: Supervisor, fleet: Fleet) -> None:
    """Connections of other applications, seen in pg_stat_activity, shrink the budget; the
    budget is what the server allows less its reserved slots, the reserve, the others and
    the plugin's own connection."""
    bot = f"""
[bots.dbw]
module = "bots.db_worker:main"
env = {fleet.bot_env(DB_WORK_S="0")}
"""
    sup.configure(fleet.config(bot, 'reserve = 5\ninterval_s = "0.25s"'))
    sup.start()
    sup.wait_running("dbw", 1)
    db = lambda: sup.status()["plugins"]["db_tuning"]  # noqa: E731
    wait_until(lambda: db()["others"] is not None, what="a first reading of the server")
    others = [psycopg.connect(fleet.dsn, application_name="someone-else") for _ in range(5)]
    try:
        status = wait_until(
            lambda: (s := db())["others"] >= 5 and s, what="at least our 5 counted as others"
        )
        server = status["max_connections"] - status["superuser_reserved"]
        assert status["budget"] == server - 5 - status["others"] - 1
    finally:
        for conn in others:
            conn.close()


def test_db_pool_without_the_plugin_waits_and_the_supervisor_says_why(
    sup: Supervisor, fleet: Fleet
) -> None:
    """A bot that asks for a pool where no db_tuning plugin runs gets none (it waits); the
    request is rejected on its own, so the worker's other messages (READY, heartbeats) still
    arrive and it stays up."""
    bot = f"""
[bots.dbs]
module = "tests.bots.db_sync:main"
heartbeat_timeout_s = "2s"
env = {fleet.bot_env(DB_READY_FIRST="1")}
"""
    sup.configure(bot)
    sup.start()
    pids = sup.wait_running("dbs", 1)
    wait_until(
        lambda: any(
            "unknown message kind 34" in e.get("detail", "") for e in sup.events("frame_rejected")
        ),
        what="the rejected request",
    )
    wait_until(lambda: sup.bot("dbs")["ready"] == 1, what="the worker ready")
    # Up for twice its heartbeat timeout: had its heartbeats been lost, the watchdog would
    # have killed it by then.
    wait_until(lambda: sup.bot("dbs")["workers"][0]["uptime_s"] > 4.0, what="4 s of uptime")
    assert sup.pids("dbs") == pids
    assert sup.bot("dbs")["restarts"] == 0
    assert fleet.connections(fleet.conn) == 0


def test_a_reloaded_plugin_learns_the_pools_already_open(sup: Supervisor, fleet: Fleet) -> None:
    """A reload that changes [plugins.db_tuning] starts a new plugin with an empty ledger in
    a fleet whose pools are open: the workers announce what they hold, so a worker added
    afterwards still gets only what the others give back, and the budget holds."""
    env = fleet.bot_env(DB_CONCURRENCY="4", DB_WORK_S="0.01")

    def bot(workers: int) -> str:
        return f'[bots.dbw]\nmodule = "bots.db_worker:main"\nworkers = {workers}\nenv = {env}\n'

    plugin = 'environment = "prod"\nreserve = 0\nmax_fleet_connections = 6\ninterval_s = "{}"'
    sup.configure(fleet.config(bot(2), plugin.format("0.25s")))
    fleet.push(1_000_000)
    fleet.start_sampler()
    sup.start()
    sup.wait_running("dbw", 2)
    wait_until(lambda: fleet.connections(fleet.conn) == 6, what="the budget in use")

    sup.configure(fleet.config(bot(3), plugin.format("0.2s")))
    result = sup.cli("reload")
    assert result.returncode == 0, result.stderr
    sup.wait_running("dbw", 3)
    db = lambda: sup.status()["plugins"]["db_tuning"]  # noqa: E731
    wait_until(lambda: db()["bots"]["dbw"]["workers"] == 3, what="3 workers known")
    wait_until(lambda: db()["bots"]["dbw"]["granted"] == 6, what="6 granted over 3 workers")
    before = fleet.done()
    wait_until(lambda: fleet.done() > before + 100, what="jobs done by the new plugin's fleet")
    fleet.stop_sampler()
    assert max(fleet.samples) <= 6, f"over the budget: {max(fleet.samples)} connections"
    resized = [e for e in sup.events("db_pool_resized") if e["worker"] == 2]
    assert resized
    assert resized[0]["previous"] == 0
    assert resized[0]["size"] <= 2
