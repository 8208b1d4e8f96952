"""The history file: its schema, how it is opened (and recovered), and how it is read.

    run_dir/history.sqlite3    SQLite in WAL mode, schema version in meta

    series(id, bot, worker, metric)        one row per time series; worker -1: the bot itself,
                                           bot "": the supervisor and the host
    raw(ts, series, value)                 every sample, kept `raw_s`
    rollup(tier, ts, series, value, lo, hi, n)
                                           tier 1: 1-minute buckets (mean, min, max, count),
                                           kept `minute_s`; tier 2: 10-minute buckets, kept
                                           `ten_minute_s`. A bucket's ts is its start.
    events(ts, event, bot, worker, fields) fleet events (exits, restarts, scaling, alerts...)
    baselines(name, saved_at, since_s, bot, figures)
                                           `supervisor analyze --save NAME`

Samples move down the tiers as they age (the writer rolls whole buckets up and deletes what
it rolled), so the tiers never overlap in time and a read over any window is one union.
Times are wall-clock seconds (time.time()): the history outlives the process.

A file of another schema version, or not ours, is moved aside with a message (there is no
older version to migrate from yet: version 1 is the first); a corrupt one likewise.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.errors import SupervisorError

FILENAME = "history.sqlite3"
SCHEMA_VERSION = 1
BUCKET_S = {1: 60, 2: 600}  # tier -> bucket width
FLEET = ""  # the bot name of supervisor- and host-wide series
BOT = -1  # the worker number of bot-wide series

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE series(
    id INTEGER PRIMARY KEY, bot TEXT NOT NULL, worker INTEGER NOT NULL, metric TEXT NOT NULL,
    UNIQUE(bot, worker, metric));
CREATE TABLE raw(
    ts REAL NOT NULL, series INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY(ts, series)) WITHOUT ROWID;
CREATE TABLE rollup(
    tier INTEGER NOT NULL, ts INTEGER NOT NULL, series INTEGER NOT NULL,
    value REAL NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY(tier, ts, series)) WITHOUT ROWID;
CREATE TABLE events(
    ts REAL NOT NULL, event TEXT NOT NULL, bot TEXT NOT NULL, worker INTEGER NOT NULL,
    fields TEXT NOT NULL);
CREATE INDEX events_ts ON events(ts);
CREATE TABLE baselines(
    name TEXT PRIMARY KEY, saved_at REAL NOT NULL, since_s REAL NOT NULL, bot TEXT NOT NULL,
    figures TEXT NOT NULL);
"""


class StoreError(SupervisorError):
    """The history cannot be read (missing, empty, foreign or corrupt): one line for the CLI."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each tier is kept, and the file's size cap ([plugins.monitor.history])."""

    raw_s: float = 3600.0
    minute_s: float = 86400.0
    ten_minute_s: float = 30 * 86400.0
    max_mb: float = 512.0


def path_in(run_dir: str | Path) -> Path:
    return Path(run_dir) / FILENAME


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, waiting on locks."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The file's schema version; None for an empty file; -1 for a file that is not ours."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return None
    if "meta" not in tables:
        return -1
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0]) if row else -1
    except ValueError:
        return -1


def open_for_writing(path: Path) -> tuple[sqlite3.Connection, str]:
    """Open (creating it) the store at path; a foreign, older or corrupt file is moved aside.

    Returns the connection and a message for the operator ("" when all was well). Raises
    sqlite3.Error or OSError when the file cannot be made at all (an unwritable run_dir).
    """
    message = ""
    try:
        conn = connect(path)
        version = schema_version(conn)
        if version == SCHEMA_VERSION:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn, ""
        conn.close()
        if version is not None:
            what = "not a history store" if version < 0 else f"schema version {version}"
            message = f"{path}: {what}, this supervisor writes version {SCHEMA_VERSION}"
    except sqlite3.DatabaseError as e:
        with contextlib.suppress(NameError, sqlite3.Error):
            conn.close()
        message = f"{path}: unreadable ({e})"
    if message:
        aside = set_aside(path)
        message += f"; moved to {aside.name}, a new store started"
    return create(path), message


def set_aside(path: Path) -> Path:
    """Move a bad store (and its WAL) out of the way, keeping it for a post-mortem."""
    aside = path.with_name(f"{path.name}.bad-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            if suffix:
                source.unlink()
            else:
                source.replace(aside)
    return aside


def create(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table: the cap shrinks
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(
        f"BEGIN; {_SCHEMA} INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'),"
        f" ('created', '{time.time()}'); COMMIT;"
    )  # one transaction: a file is a whole store or none
    return conn


def open_for_reading(path: Path) -> sqlite3.Connection:
    """Open the store for `analyze`; StoreError (one line) when it cannot be read."""
    if not path.exists():
        raise StoreError(f"no history at {path}: the monitor plugin writes it while the fleet runs")
    try:
        conn = connect(path)
        version = schema_version(conn)
    except sqlite3.DatabaseError as e:
        raise StoreError(f"{path}: cannot read the history ({e})") from None
    if version is None:
        raise StoreError(f"{path}: the history is empty")
    if version != SCHEMA_VERSION:
        what = "not a history store" if version < 0 else f"schema version {version}"
        raise StoreError(f"{path}: {what}; this supervisor reads version {SCHEMA_VERSION}")
    return conn


# ---------------------------------------------------------------- reading

Key = tuple[str, int, str]  # (bot, worker, metric)


def samples(
    conn: sqlite3.Connection,
    since: float,
    until: float | None = None,
    *,
    bot: str | None = None,
    metric: str | None = None,
    step: float | None = None,
) -> dict[Key, list[tuple[float, float]]]:
    """Every series' (ts, value) points from since to until, oldest first, all tiers merged.

    With step, each series comes as the means of step-second buckets (ts: the bucket's first
    sample): a long window of a big fleet is read at the resolution it is looked at.
    """
    until = time.time() + 1e9 if until is None else until
    where = ["x.ts >= ?", "x.ts <= ?"]
    args: list[Any] = [since, until]
    if bot is not None:
        where.append("(s.bot = ? OR s.bot = '')")
        args.append(bot)
    if metric is not None:
        where.append("s.metric = ?")
        args.append(metric)
    columns, group = "x.ts, x.value", ""
    if step is not None and step > 0:
        columns = "min(x.ts), avg(x.value)"
        group = f" GROUP BY x.series, CAST(x.ts / {float(step)!r} AS INTEGER)"
    query = (
        f"SELECT s.bot, s.worker, s.metric, {columns} FROM ("
        "  SELECT ts, series, value FROM raw UNION ALL"
        "  SELECT ts, series, value FROM rollup"
        f") x JOIN series s ON s.id = x.series WHERE {' AND '.join(where)}{group} ORDER BY 4"
    )
    out: dict[Key, list[tuple[float, float]]] = {}
    for b, w, m, ts, value in conn.execute(query, args):
        out.setdefault((b, w, m), []).append((ts, value))
    return out


def events(
    conn: sqlite3.Connection, since: float, until: float | None = None, *, bot: str | None = None
) -> list[dict[str, Any]]:
    until = time.time() + 1e9 if until is None else until
    query = "SELECT ts, event, bot, worker, fields FROM events WHERE ts >= ? AND ts <= ?"
    args: list[Any] = [since, until]
    if bot is not None:
        query += " AND bot = ?"
        args.append(bot)
    out = []
    for ts, event, b, worker, fields in conn.execute(query + " ORDER BY ts", args):
        try:
            extra = json.loads(fields)
        except ValueError:
            extra = {}
        out.append({**(extra if isinstance(extra, dict) else {}), "ts": ts, "event": event,
                    "bot": b, "worker": worker})  # fmt: skip
    return out


def bots(conn: sqlite3.Connection) -> set[str]:
    """Every bot the history has seen."""
    found = {r[0] for r in conn.execute("SELECT DISTINCT bot FROM series WHERE bot != ''")}
    return found | {r[0] for r in conn.execute("SELECT DISTINCT bot FROM events WHERE bot != ''")}


def span(conn: sqlite3.Connection) -> tuple[float, float] | None:
    """The oldest and newest sample times, or None when nothing was written yet."""
    lo = hi = None
    for table in ("raw", "rollup"):
        a, b = conn.execute(f"SELECT min(ts), max(ts) FROM {table}").fetchone()
        if a is not None:
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return None if lo is None or hi is None else (lo, hi)


def save_baseline(
    conn: sqlite3.Connection, name: str, since_s: float, bot: str, figures: dict[str, Any]
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?, ?)",
        (name, time.time(), since_s, bot, json.dumps(figures)),
    )


def baseline(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT saved_at, since_s, bot, figures FROM baselines WHERE name = ?", (name,)
    ).fetchone()
    if row is None:
        return None
    return {"name": name, "saved_at": row[0], "since_s": row[1], "bot": row[2],
            "figures": json.loads(row[3])}  # fmt: skip


def baseline_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM baselines ORDER BY saved_at")]


# ---------------------------------------------------------------- writing (the writer's thread)


def series_id(conn: sqlite3.Connection, cache: dict[Key, int], key: Key) -> int:
    found = cache.get(key)
    if found is None:
        conn.execute("INSERT OR IGNORE INTO series(bot, worker, metric) VALUES (?, ?, ?)", key)
        row = conn.execute(
            "SELECT id FROM series WHERE bot = ? AND worker = ? AND metric = ?", key
        ).fetchone()
        found = cache[key] = int(row[0])
    return found


def write(
    conn: sqlite3.Connection,
    cache: dict[Key, int],
    points: Iterable[tuple[float, Key, float]],
    fleet_events: Iterable[tuple[float, str, str, int, str]],
) -> int:
    """One transaction of samples and events; returns how many rows went in."""
    rows = [(ts, series_id(conn, cache, key), value) for ts, key, value in points]
    ev = list(fleet_events)
    conn.execute("BEGIN")
    try:
        conn.executemany("INSERT OR REPLACE INTO raw VALUES (?, ?, ?)", rows)
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", ev)
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return len(rows) + len(ev)


_ROLL_RAW = """
INSERT INTO rollup(tier, ts, series, value, lo, hi, n)
SELECT 1, CAST(ts / 60 AS INTEGER) * 60 AS bucket, series, avg(value), min(value), max(value),
       count(*)
FROM raw WHERE ts < ? GROUP BY bucket, series
ON CONFLICT(tier, ts, series) DO UPDATE SET
    value = (value * n + excluded.value * excluded.n) / (n + excluded.n),
    lo = min(lo, excluded.lo), hi = max(hi, excluded.hi), n = n + excluded.n
"""
_ROLL_MINUTE = """
INSERT INTO rollup(tier, ts, series, value, lo, hi, n)
SELECT 2, (ts / 600) * 600 AS bucket, series, sum(value * n) / sum(n), min(lo), max(hi), sum(n)
FROM rollup WHERE tier = 1 AND ts < ? GROUP BY bucket, series
ON CONFLICT(tier, ts, series) DO UPDATE SET
    value = (value * n + excluded.value * excluded.n) / (n + excluded.n),
    lo = min(lo, excluded.lo), hi = max(hi, excluded.hi), n = n + excluded.n
"""


def maintain(conn: sqlite3.Connection, retention: Retention, now: float) -> dict[str, int]:
    """Roll aged samples down the tiers, forget what is past retention, keep under the cap."""
    raw_cut = (now - retention.raw_s) // 60 * 60  # whole buckets only: tiers never overlap
    minute_cut = (now - retention.minute_s) // 600 * 600
    oldest = now - retention.ten_minute_s
    done: dict[str, int] = {}
    conn.execute("BEGIN")
    try:
        conn.execute(_ROLL_RAW, (raw_cut,))
        done["raw_rolled"] = conn.execute("DELETE FROM raw WHERE ts < ?", (raw_cut,)).rowcount
        conn.execute(_ROLL_MINUTE, (minute_cut,))
        done["minute_rolled"] = conn.execute(
            "DELETE FROM rollup WHERE tier = 1 AND ts < ?", (minute_cut,)
        ).rowcount
        done["expired"] = conn.execute(
            "DELETE FROM rollup WHERE tier = 2 AND ts < ?", (oldest,)
        ).rowcount
        conn.execute("DELETE FROM events WHERE ts < ?", (oldest,))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    done["trimmed"] = enforce_cap(conn, retention.max_mb * 2**20, now)
    return done


def used_bytes(conn: sqlite3.Connection) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * conn.execute("PRAGMA page_size").fetchone()[0])


def enforce_cap(conn: sqlite3.Connection, cap_bytes: float, now: float) -> int:
    """Over the cap, the oldest tenth of the kept span goes, until under it (or 10 rounds)."""
    deleted = 0
    for _ in range(10):
        if used_bytes(conn) <= cap_bytes:
            break
        found = span(conn)
        if found is None:
            break
        cut = found[0] + max(now - found[0], 60.0) * 0.1
        conn.execute("BEGIN")
        deleted += conn.execute("DELETE FROM rollup WHERE ts < ?", (cut,)).rowcount
        deleted += conn.execute("DELETE FROM raw WHERE ts < ?", (cut,)).rowcount
        conn.execute("DELETE FROM events WHERE ts < ?", (cut,))
        conn.execute("COMMIT")
    if deleted:
        conn.execute("PRAGMA incremental_vacuum")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deleted
