"""The history's one writer: a thread fed by a bounded queue, so the loop never waits on disk.

    writer = Writer(run_dir / "history.sqlite3", Retention())
    writer.start()
    writer.add_samples(time.time(), [(("echo", 0, "cpu_percent"), 12.5), ...])  # never blocks
    writer.add_event(time.time(), "worker_exited", "echo", 0, {"exit_code": 1})
    for line in writer.take_problems(): log it             # from the loop, now and then
    writer.stop()

When the queue is full (the disk is slower than the fleet) a batch is dropped and counted in
`dropped`. A store that turns out corrupt is moved aside and recreated; one that cannot be
written (a read-only file, a full disk) is retried; each such episode is reported once, in
`take_problems()`, until a write succeeds again.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.history import store
from supervisor.history.store import Key, Retention

Point = tuple[Key, float]
_MAINTAIN_EVERY_S = 60.0
_RETRY_OPEN_S = 30.0
_STOP = object()


class Writer:
    def __init__(
        self,
        path: Path,
        retention: Retention,
        *,
        queue_size: int = 256,
        clock: Callable[[], float] = time.time,
        maintain_every_s: float = _MAINTAIN_EVERY_S,
    ) -> None:
        self.path = path
        self.retention = retention
        self.dropped = 0  # batches the queue had no room for, or that could not be written
        self.written = 0  # rows
        self.write_s = 0.0  # thread time spent writing and maintaining
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._clock = clock
        self._maintain_every_s = maintain_every_s
        self._problems: list[str] = []
        self._lock = threading.Lock()
        self._failing = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._ids: dict[Key, int] = {}
        self._next_open = 0.0
        self._identity: tuple[int, int] = (0, 0)
        self._next_maintain = 0.0

    # ------------------------------------------------------------ the loop's side

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (for up to timeout_s), then close."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._thread = None

    def add_samples(self, ts: float, points: list[Point]) -> bool:
        return self._put(("samples", ts, points))

    def add_event(
        self, ts: float, event: str, bot: str, worker: int, fields: dict[str, Any]
    ) -> bool:
        text = json.dumps(fields, default=str, separators=(",", ":"))
        return self._put(("event", (ts, event, bot, worker, text)))

    def take_problems(self) -> list[str]:
        with self._lock:
            found, self._problems = self._problems, []
        return found

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def _put(self, item: Any) -> bool:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                items = [self._queue.get(timeout=1.0)]
            except queue.Empty:
                items = []
            while len(items) < 512:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in items:
                stopping = True
                items = [i for i in items if i is not _STOP]
            started = time.thread_time()
            self._write(items)
            self._maybe_maintain()
            self.write_s += time.thread_time() - started
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    def _write(self, items: list[Any]) -> None:
        if not items:
            return
        conn = self._connection()
        if conn is None:
            self.dropped += len(items)
            return
        points = [(i[1], key, value) for i in items if i[0] == "samples" for key, value in i[2]]
        fleet_events = [i[1] for i in items if i[0] == "event"]
        try:
            self.written += store.write(conn, self._ids, points, fleet_events)
            self._failing = False
        except sqlite3.Error as e:
            self.dropped += len(items)
            self._failed(e)

    def _maybe_maintain(self) -> None:
        now = self._clock()
        if now < self._next_maintain or self._conn is None:
            return
        self._next_maintain = now + self._maintain_every_s
        try:
            self._check_file()
            store.maintain(self._conn, self.retention, now)
        except sqlite3.Error as e:
            self._failed(e)

    def _check_file(self) -> None:
        """An open connection does not notice its file removed or replaced; a stat does.

        Only a stat: opening the file on another descriptor and closing it would drop this
        process's POSIX locks on it, and another process's connection closing next would then
        take itself for the last one and delete the WAL under us.
        """
        try:
            st = self.path.stat()
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != self._identity:
            raise sqlite3.OperationalError("readonly: the file was removed or replaced")

    def maintain_now(self) -> None:
        """For tests and benches: the next write is followed by maintenance."""
        self._next_maintain = 0.0

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if time.monotonic() < self._next_open:
            return None
        try:
            self._conn, message = store.open_for_writing(self.path)
        except (sqlite3.Error, OSError) as e:
            self._next_open = time.monotonic() + _RETRY_OPEN_S
            self._report(f"{self.path}: cannot open the history store ({e}); retrying")
            return None
        self._ids = {}
        st = self.path.stat()
        self._identity = (st.st_dev, st.st_ino)
        if message:
            self._report(message)
        return self._conn

    def _failed(self, error: sqlite3.Error) -> None:
        """A write failed: corrupt -> moved aside and recreated; read-only -> recreated;
        anything else (a full disk) -> the batch is lost and the next one tries again."""
        text = str(error)
        corrupt = not isinstance(error, sqlite3.OperationalError) or "malformed" in text
        readonly = "readonly" in text or "read-only" in text
        if corrupt or readonly:
            with contextlib.suppress(sqlite3.Error):
                if self._conn is not None:
                    self._conn.close()
            self._conn = None
            try:
                if corrupt:
                    aside = store.set_aside(self.path)
                    detail = f"moved to {aside.name}"
                else:
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                    detail = "removed"
            except OSError as e:
                detail = f"could not be removed ({e.strerror or e})"
            self._report(f"{self.path}: history store {text}; {detail}, a new one started")
        else:
            self._report(f"{self.path}: history write failed ({text}); samples are lost meanwhile")

    def _report(self, message: str) -> None:
        if self._failing:
            return  # once per episode: the next successful write ends it
        self._failing = True
        with self._lock:
            self._problems.append(message)
