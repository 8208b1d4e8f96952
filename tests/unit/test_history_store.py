"""The history store: schema checks, recovery, the writer thread, roll-up, retention and the cap.

Real SQLite files in tmp_path; the writer's thread is real (waits are polled, bounded).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from supervisor.history import store
from supervisor.history.store import Retention, StoreError
from supervisor.history.writer import Writer


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> None:
    """Poll predicate until true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(interval)


def _fill(conn: sqlite3.Connection, start: float, seconds: int, series: int = 3) -> None:
    ids: dict[store.Key, int] = {}
    points = [
        (start + t, ("bot", w, "cpu_percent"), float(t % 60))
        for t in range(seconds)
        for w in range(series)
    ]
    store.write(conn, ids, points, [(start, "worker_exited", "bot", 0, '{"exit_code": 1}')])


def test_a_new_store_has_the_schema_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / store.FILENAME
    conn, message = store.open_for_writing(path)
    assert message == ""
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    _fill(conn, 1000.0, 10)
    reader = store.open_for_reading(path)
    got = store.samples(reader, 0)
    assert sorted(got) == [("bot", w, "cpu_percent") for w in range(3)]
    assert [v for _, v in got[("bot", 1, "cpu_percent")]] == [float(t) for t in range(10)]
    assert store.events(reader, 0)[0] | {"ts": 0} == {
        "ts": 0, "event": "worker_exited", "bot": "bot", "worker": 0, "exit_code": 1,
    }  # fmt: skip
    assert store.bots(reader) == {"bot"}


@pytest.mark.parametrize(
    ("prepare", "said"),
    [
        (lambda p: p.write_bytes(b"this is not a database at all" * 100), "unreadable"),
        (lambda p: sqlite3.connect(p).execute("CREATE TABLE x(a)").connection.commit(), "not a"),
        (
            lambda p: (
                sqlite3.connect(p)
                .executescript(
                    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);"
                    "INSERT INTO meta VALUES ('schema_version', '0');"
                )
                .connection.commit()
            ),
            "schema version 0",
        ),
    ],
    ids=["garbage", "foreign", "old-version"],
)
def test_a_bad_file_is_moved_aside_and_replaced(tmp_path: Path, prepare: object, said: str) -> None:
    path = tmp_path / store.FILENAME
    prepare(path)  # type: ignore[operator]
    with pytest.raises(StoreError):
        store.open_for_reading(path)
    conn, message = store.open_for_writing(path)
    assert said in message
    assert "a new store started" in message
    assert store.schema_version(conn) == store.SCHEMA_VERSION
    assert len(list(tmp_path.glob(f"{store.FILENAME}.bad-*"))) == 1


def test_reading_a_missing_or_empty_store_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / store.FILENAME
    with pytest.raises(StoreError, match="no history at"):
        store.open_for_reading(path)
    sqlite3.connect(path).close()
    with pytest.raises(StoreError, match="empty"):
        store.open_for_reading(path)


def test_samples_roll_down_the_tiers_and_expire(tmp_path: Path) -> None:
    conn, _ = store.open_for_writing(tmp_path / store.FILENAME)
    start = 600_000.0  # on a 10-minute boundary
    _fill(conn, start, 1800)  # 30 minutes at 1 Hz
    retention = Retention(raw_s=600, minute_s=1200, ten_minute_s=3600)
    done = store.maintain(conn, retention, now=start + 1800)
    # raw older than 10 minutes -> minute buckets; minute buckets older than 20 -> 10-minute
    raw = conn.execute("SELECT min(ts) FROM raw").fetchone()[0]
    assert raw == start + 1200
    tiers = dict(conn.execute("SELECT tier, count(*) FROM rollup GROUP BY tier").fetchall())
    assert tiers == {1: 10 * 3, 2: 1 * 3}
    assert done["raw_rolled"] == 1200 * 3
    bucket = conn.execute(
        "SELECT value, lo, hi, n FROM rollup WHERE tier = 2 AND series = 1"
    ).fetchone()
    assert bucket == (pytest.approx(29.5), 0.0, 59.0, 600)
    # the whole history still reads as one series, in order, with no overlap
    got = store.samples(conn, 0)[("bot", 0, "cpu_percent")]
    times = [t for t, _ in got]
    assert times == sorted(times)
    assert len(times) == len(set(times)) == 1 + 10 + 600
    # a month later it is all gone
    store.maintain(conn, retention, now=start + 1800 + 7200)
    assert store.samples(conn, 0) == {}


def test_the_size_cap_drops_the_oldest_first(tmp_path: Path) -> None:
    conn, _ = store.open_for_writing(tmp_path / store.FILENAME)
    _fill(conn, 1_000_000.0, 4000, series=20)
    before = store.used_bytes(conn)
    cap = before / 2
    store.enforce_cap(conn, cap, now=1_004_000.0)
    assert store.used_bytes(conn) <= cap
    first, last = store.span(conn) or (0, 0)
    assert first > 1_000_000.0
    assert last == 1_003_999.0
    assert os.path.getsize(tmp_path / store.FILENAME) < before  # and the file shrank


def test_the_writer_writes_off_the_callers_thread_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / store.FILENAME
    writer = Writer(path, Retention())
    writer.start()
    now = time.time()
    for i in range(20):
        assert writer.add_samples(now + i, [(("b", 0, "rss_mb"), float(i))])
    writer.add_event(now, "worker_exited", "b", 0, {"signal": 9})
    wait_for(lambda: writer.written >= 21, timeout=10)
    writer.stop()
    writer = Writer(path, Retention())
    writer.start()
    writer.add_samples(now + 20, [(("b", 0, "rss_mb"), 20.0)])
    wait_for(lambda: writer.written >= 1, timeout=10)
    writer.stop()
    got = store.samples(store.open_for_reading(path), 0)[("b", 0, "rss_mb")]
    assert [v for _, v in got] == [float(i) for i in range(21)]
    assert writer.take_problems() == []


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    writer = Writer(tmp_path / store.FILENAME, Retention(), queue_size=5)  # not started: no drain
    accepted = [writer.add_samples(float(i), [(("b", 0, "x"), 1.0)]) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert writer.dropped == 3


def test_a_store_replaced_under_the_writer_is_reported_once_and_recreated(
    tmp_path: Path,
) -> None:
    path = tmp_path / store.FILENAME
    writer = Writer(path, Retention(), maintain_every_s=0.05)
    writer.start()
    writer.add_samples(time.time(), [(("b", 0, "x"), 1.0)])
    wait_for(lambda: writer.written >= 1, timeout=10)
    # Someone replaces the file with garbage (a new file at the path, the old one unlinked).
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\0garbage" * 4096)
    garbage.replace(path)
    problems: list[str] = []

    def recovered() -> bool:
        writer.add_samples(time.time(), [(("b", 0, "x"), 2.0)])
        problems.extend(writer.take_problems())
        try:  # (the old WAL can make even the garbage readable for a moment: wait for both)
            return bool(problems) and bool(store.samples(store.open_for_reading(path), 0))
        except StoreError:
            return False

    wait_for(recovered, timeout=20, interval=0.2)
    for i in range(5):  # and it stays recovered: no second report
        writer.add_samples(time.time() + i, [(("b", 0, "x"), 3.0)])
    written = writer.written
    wait_for(lambda: writer.written >= written + 5, timeout=10)
    writer.stop()
    problems.extend(writer.take_problems())
    assert len(problems) == 1, problems
    assert "a new one started" in problems[0]


def test_an_unwritable_run_dir_is_reported_once_and_never_raises(tmp_path: Path) -> None:
    path = tmp_path / "missing-dir" / store.FILENAME  # cannot be created: its folder is absent
    writer = Writer(path, Retention())
    writer.start()
    for i in range(3):
        writer.add_samples(float(i), [(("b", 0, "x"), 1.0)])
    wait_for(lambda: writer.dropped >= 3, timeout=10)
    writer.stop()
    problems = writer.take_problems()
    assert len(problems) == 1
    assert "cannot open the history store" in problems[0]


def test_a_long_window_reads_as_bucket_means(tmp_path: Path) -> None:
    conn, _ = store.open_for_writing(tmp_path / store.FILENAME)
    _fill(conn, 600_000.0, 600, series=2)  # values 0..59 each minute
    got = store.samples(conn, 0, step=60)[("bot", 0, "cpu_percent")]
    assert [t for t, _ in got] == [600_000.0 + 60 * i for i in range(10)]
    assert {v for _, v in got} == {29.5}
