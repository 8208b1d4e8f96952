"""Writing worker output to files: a queue per worker slot, one writer thread.

    loop (LineReader) --line--> WorkerLog queue --> writer thread: format, append, rotate
                                                          |
                                                          +--> housekeeper thread: gzip, retention

The loop only stamps the time and appends to a deque, so a slow or full
disk never stalls it. Each slot's queue is bounded: past `_HIGH_BYTES` not
yet written, the slot's pipes stop being read until the writer is below
`_LOW_BYTES`; the worker then blocks on its own full pipe. Nothing is
dropped, and a flooding bot slows itself down, not the supervisor.

The layout on disk and why rotation loses and repeats nothing: logread.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import anyio
import structlog

from supervisor.config.loglayout import list_segments, live_link, segment_name
from supervisor.config.logs import FileFormat, LogSettings
from supervisor.daemon.output import LineReader

log = structlog.get_logger("supervisor.logfiles")

_HIGH_BYTES = 1 << 20  # per slot, queued and not yet written: stop reading its pipes
_LOW_BYTES = 256 << 10  # ... and read them again once below this
_LINE_OVERHEAD = 48  # counted per line on top of its text: timestamp, stream, pid
_JOIN_TIMEOUT_S = 10.0
_DRAIN_POLL_S = 0.02

Item = tuple[float, int, str, str]  # (time, pid, stream, text)


class LogWriter:
    """Owns every worker's log file under `root` and the two threads that write them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs: dict[tuple[str, int], WorkerLog] = {}
        self.failed_writes = 0
        self._wake = threading.Event()
        self._wake_soon = False
        self._retired: deque[WorkerLog] = deque()  # to be flushed and closed by the writer
        self._closing = False
        self._chores: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # The supervisor's user only (workers of other users must not read each other's).
        self.root.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)  # an earlier version made it 0750
        for target, name in ((self._write_loop, "log-writer"), (self._chore_loop, "log-chores")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def open(self, bot: str, slot: int, settings: LogSettings) -> WorkerLog:
        """The log of a worker slot; a restarted worker goes on in the same files."""
        wlog = self.logs.get((bot, slot))
        if wlog is None:
            wlog = self.logs[bot, slot] = WorkerLog(self, bot, slot, settings)
        wlog.settings = settings  # a reload may have changed them; the writer reads them anew
        return wlog

    def configure(self, bot: str, settings: LogSettings) -> None:
        """New settings for a bot's files (a reload): the writer uses them from its next write."""
        for (name, _), wlog in self.logs.items():
            if name == bot:
                wlog.settings = settings

    async def retire(self, bot: str, timeout_s: float) -> None:
        """A bot is gone (a reload removed it): once its output is written, close its files.

        The writer thread closes them itself, so no descriptor is closed under its feet.
        """
        mine = [(key, wlog) for key, wlog in self.logs.items() if key[0] == bot]
        with anyio.move_on_after(timeout_s):
            while any(wlog.busy for _, wlog in mine):
                self._wake.set()
                await anyio.sleep(_DRAIN_POLL_S)
        for key, wlog in mine:
            for reader in list(wlog.readers):  # held open past the timeout (a stray child)
                reader.close()
            del self.logs[key]
            self._retired.append(wlog)
        self._wake.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every pipe has been read to its end and every line is written."""
        with anyio.move_on_after(timeout_s):
            while any(w.busy for w in self.logs.values()):
                self._wake.set()
                await anyio.sleep(_DRAIN_POLL_S)
            return True
        return False

    def close(self) -> None:
        """Write what is queued, finish compression and retention, stop the threads."""
        self._closing = True
        self._wake.set()
        for thread in self._threads[:1]:  # the writer may hand out chores until it ends
            thread.join(_JOIN_TIMEOUT_S)
        self._chores.put(None)
        for thread in self._threads[1:]:
            thread.join(_JOIN_TIMEOUT_S)
        for wlog in self.logs.values():
            wlog.close()

    # ------------------------------------------------------------ the threads

    def wake(self) -> None:
        """On the loop: wake the writer once this loop iteration is done, not once per line
        (a wake per line cost a thread switch per line: twice the CPU of the whole write)."""
        if not self._wake_soon and self._loop is not None:
            self._wake_soon = True
            self._loop.call_soon(self._wake_now)

    def _wake_now(self) -> None:
        self._wake_soon = False
        self._wake.set()

    def chore(self, job: Callable[[], None]) -> None:
        self._chores.put(job)

    def resume_soon(self, wlog: WorkerLog) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to resume
                self._loop.call_soon_threadsafe(wlog.resume)

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            for wlog in list(self.logs.values()):
                try:
                    wlog.flush()
                except Exception:  # a bug here must not leave every worker's pipe paused
                    log.exception("log_writer_failed", bot=wlog.bot, worker=wlog.slot)
            while self._retired:
                retired = self._retired.popleft()
                try:
                    retired.flush()
                except Exception:
                    log.exception("log_writer_failed", bot=retired.bot, worker=retired.slot)
                retired.close()
            if self._closing and not any(w.queued for w in list(self.logs.values())):
                return

    def _chore_loop(self) -> None:
        while (job := self._chores.get()) is not None:
            try:
                job()
            except OSError as e:
                log.warning("log_chore_failed", error=str(e))
            except Exception:  # the thread lives on: the next rotation tries again
                log.exception("log_chore_failed")


class WorkerLog:
    """One worker slot's files. `write` is called on the loop; `flush` on the writer thread."""

    def __init__(self, writer: LogWriter, bot: str, slot: int, settings: LogSettings) -> None:
        self.bot = bot
        self.slot = slot
        self.settings = settings
        self.directory = writer.root / bot
        self.readers: set[LineReader] = set()
        self.paused = False
        self.queued_bytes = 0  # grows on the loop only
        self.written_bytes = 0  # grows on the writer thread only
        self._writer = writer
        self._queue: deque[Item] = deque()
        self._resume_pending = False
        self._fd = -1
        self._seq = 0
        self._size = 0
        self._failing = False
        self._stamp = (-1, "")  # (second, its text), reused for every line of that second

    # ------------------------------------------------------------ on the loop

    def read(self, fd: int, pid: int, stream: str, on_line: Callable[[str], None]) -> None:
        """Read a worker's pipe: every line goes to the file, then to on_line."""

        def line(text: str) -> None:
            self.write(pid, stream, text)
            on_line(text)

        def closed() -> None:
            self.readers.discard(reader)

        reader = LineReader(fd, line, on_close=closed)
        self.readers.add(reader)
        if self.paused:
            reader.pause()

    def write(self, pid: int, stream: str, text: str) -> None:
        self._queue.append((time.time(), pid, stream, text))
        self.queued_bytes += len(text) + _LINE_OVERHEAD
        self._writer.wake()
        if not self.paused and self.pending_bytes > _HIGH_BYTES:
            self.paused = True
            for reader in self.readers:
                reader.pause()
            self._writer.wake()  # so that the writer sees `paused` after its next pass

    def resume(self) -> None:
        self._resume_pending = False
        if self.paused and self.pending_bytes < _LOW_BYTES:
            self.paused = False
            for reader in list(self.readers):
                reader.resume()

    @property
    def pending_bytes(self) -> int:
        return self.queued_bytes - self.written_bytes

    @property
    def queued(self) -> bool:
        return bool(self._queue)

    @property
    def busy(self) -> bool:
        return bool(self.readers or self._queue)

    # ------------------------------------------------------------ on the writer thread

    def flush(self) -> None:
        items: list[Item] = []
        with contextlib.suppress(IndexError):
            while True:
                items.append(self._queue.popleft())
        try:
            if items:
                self._append([self._format(item) for item in items])
        finally:  # written or lost, they no longer hold the pipes back
            self.written_bytes += sum(len(item[3]) + _LINE_OVERHEAD for item in items)
            if self.paused and not self._resume_pending and self.pending_bytes < _LOW_BYTES:
                self._resume_pending = True
                self._writer.resume_soon(self)

    def _format(self, item: Item) -> bytes:
        ts, pid, stream, text = item
        second = int(ts)
        if second != self._stamp[0]:
            self._stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        stamp = f"{self._stamp[1]}.{int((ts - second) * 1e6):06d}Z"
        if self.settings.file_format is FileFormat.JSON:
            record = {"ts": stamp, "bot": self.bot, "worker": self.slot, "pid": pid,
                      "stream": stream, "line": text}  # fmt: skip
            return (json.dumps(record, ensure_ascii=False) + "\n").encode()
        return f"{stamp} {stream} {pid} {text}\n".encode()

    def _append(self, lines: list[bytes]) -> None:
        """Append lines, rotating before a line that would take the file past max_bytes."""
        limit = self.settings.max_bytes
        chunk = bytearray()
        try:
            if self._fd >= 0 and os.fstat(self._fd).st_nlink == 0:
                # Its file (or the whole log directory) was deleted under us: writing on
                # would fill an inode nobody can read until the next rotation. Start anew.
                log.warning("log_file_removed", bot=self.bot, worker=self.slot)
                self.close()
            if self._fd < 0:
                self._open_first()
            for line in lines:
                used = self._size + len(chunk)
                if limit and used and used + len(line) > limit:
                    self._write_all(chunk)
                    chunk.clear()
                    self._rotate()
                chunk += line
            self._write_all(chunk)
            self._failing = False
        except OSError as e:
            self._writer.failed_writes += 1
            if not self._failing:  # say it once per run of failures, not once per batch
                self._failing = True
                log.warning("log_write_failed", bot=self.bot, worker=self.slot, error=str(e))

    def _write_all(self, data: bytearray | bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def _open_first(self) -> None:
        """Go on in the last segment of an earlier run if it has room, else start the next.
        A line that run left unfinished (killed mid-write) is ended, not joined to ours."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        segments = list_segments(os.listdir(self.directory)).get(self.slot, [])
        last = segments[-1] if segments else None
        if last is None:
            self._seq = 1
        elif last.compressed:
            self._seq = last.seq + 1
        else:
            size = os.stat(self.directory / last.name).st_size
            full = self.settings.max_bytes and size >= self.settings.max_bytes
            self._seq = last.seq + 1 if full else last.seq
        self._open_segment()
        if self._size and _ends_mid_line(self.directory / segment_name(self.slot, self._seq)):
            self._write_all(b"\n")

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        self._seq += 1
        self._open_segment()

    def _open_segment(self) -> None:
        path = self.directory / segment_name(self.slot, self._seq)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size
        link = self.directory / live_link(self.slot)
        tmp = self.directory / f".{live_link(self.slot)}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(path.name, tmp)
        os.replace(tmp, link)
        live, settings = self._seq, self.settings
        self._writer.chore(lambda: tidy(self.directory, self.slot, live, settings))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _ends_mid_line(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def tidy(directory: Path, slot: int, live_seq: int, settings: LogSettings) -> None:
    """Retention, then compression, of a slot's segments before the live one."""
    segments = list_segments(os.listdir(directory)).get(slot, [])
    closed = [s for s in segments if s.seq < live_seq]
    excess = max(0, len(closed) - settings.backups)
    for seg in closed[:excess]:
        base = seg.name.removesuffix(".gz")
        for name in (base, base + ".gz"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
    for name in os.listdir(directory):  # chores run one at a time: a temp file here is stale
        if name.startswith(f".{slot}.") and name.endswith(".gz.tmp"):
            os.unlink(directory / name)
    if settings.compress:
        for seg in closed[excess:]:
            if not seg.compressed:
                compress(directory / seg.name)


def compress(path: Path) -> None:
    """path -> path.gz: written aside, renamed into place, then the original removed."""
    tmp = path.with_name(f".{path.name}.gz.tmp")
    with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path.with_name(path.name + ".gz"))
    os.unlink(path)
