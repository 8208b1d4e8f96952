"""Worker log files on disk: their layout, and reading them back (`supervisor logs`).

    run_dir/logs/BOT/SLOT.00000007.log       a segment: lines of one worker slot
    run_dir/logs/BOT/SLOT.00000006.log.gz    an older one, compressed (log_compress)
    run_dir/logs/BOT/SLOT.log                symlink to the live segment (for `tail -F`)

Segments are never renamed: rotation closes segment N and starts N+1, and
the writer starts N+1 only once every line of N is written. So a reader
that finds N+1 knows that N is complete; it reads N to its end, then goes
on with N+1, and no line is read twice or missed. Compression writes
`N.log.gz` next to `N.log` and then removes `N.log`, so one of them is
always there (until retention deletes the segment; an open one can still
be read to its end).

A line is `TS STREAM PID TEXT` (text) or a JSON object with "ts", "bot",
"worker", "pid", "stream" and "line"; TS is UTC with microseconds, fixed
width, so lines sort by time as strings. Stdlib only: the CLI imports this.
"""

from __future__ import annotations

import gzip
import heapq
import json
import os
import sys
from typing import IO, NamedTuple, Protocol

from supervisor.config.loglayout import Segment, list_segments


class _Source(Protocol):
    """A segment open for reading: a plain file, or a gzip one."""

    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


class Line(NamedTuple):
    ts: str
    slot: int
    stream: str
    pid: int
    text: str


def parse(raw: bytes, slot: int) -> Line:
    """One line of a segment; one that fits no format is kept whole, with no time."""
    text = raw.decode("utf-8", errors="replace")
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            return Line(str(obj["ts"]), slot, str(obj["stream"]), int(obj["pid"]), obj["line"])
        except (ValueError, KeyError, TypeError):
            pass
    parts = text.split(" ", 3)
    if len(parts) == 4 and parts[2].isdigit():
        return Line(parts[0], slot, parts[1], int(parts[2]), parts[3])
    return Line("", slot, "", 0, text)


def _open(directory: str, seg: Segment) -> _Source | None:
    """The segment, or None if retention deleted it (tries the compressed form too)."""
    names = [seg.name] if seg.compressed else [seg.name, seg.name + ".gz"]
    for name in names:
        path = os.path.join(directory, name)
        try:
            return gzip.open(path, "rb") if name.endswith(".gz") else open(path, "rb")
        except FileNotFoundError:
            continue
    return None


class SlotReader:
    """Reads one worker slot's segments in order, across rotations, whole lines only."""

    def __init__(self, directory: str, slot: int) -> None:
        self.directory = directory
        self.slot = slot
        self.seq = -1
        self.skipped = 0  # segments deleted before we got to them
        self._file: _Source | None = None
        self._partial = b""

    def open_last(self, segments: list[Segment]) -> list[Line]:
        """Start at the live segment; returns the lines it holds already."""
        self._partial = b""
        for seg in reversed(segments):
            self._file = _open(self.directory, seg)
            if self._file is not None:
                self.seq = seg.seq
                return self._read()
        return []

    def poll(self, segments: list[Segment]) -> list[Line]:
        """Every complete line written since the last call."""
        lines = self._read()
        for seg in segments:
            if seg.seq <= self.seq:
                continue
            # A later segment exists, so ours is complete: finish it, then move on.
            lines += self._read()
            if self._partial:
                lines.append(parse(self._partial, self.slot))
                self._partial = b""
            self._close()
            self.skipped += seg.seq - self.seq - 1 if self.seq >= 0 else 0
            self.seq = seg.seq
            self._file = _open(self.directory, seg)
            if self._file is None:
                self.skipped += 1
                continue
            lines += self._read()
        return lines

    def history(self, segments: list[Segment], n: int) -> list[Line]:
        """At least the last n lines before the live segment (older segments, newest first)."""
        older: list[Line] = []
        for seg in reversed([s for s in segments if s.seq < self.seq]):
            if len(older) >= n:
                break
            f = _open(self.directory, seg)
            if f is not None:
                try:
                    older = [parse(r, self.slot) for r in f.read().splitlines()] + older
                finally:
                    f.close()
        return older

    def _read(self) -> list[Line]:
        if self._file is None:
            return []
        data = self._file.read()
        if not data:
            return []
        *complete, self._partial = (self._partial + data).split(b"\n")
        return [parse(raw, self.slot) for raw in complete]

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class BotLogs:
    """All the slots of a bot (or one), read together and merged by time."""

    def __init__(self, directory: str, worker: int | None = None) -> None:
        self.directory = directory
        self.worker = worker
        self.readers: dict[int, SlotReader] = {}

    def _segments(self) -> dict[int, list[Segment]]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return {}
        slots = list_segments(names)
        if self.worker is not None:
            return {self.worker: slots.get(self.worker, [])}
        return slots

    def last(self, n: int) -> list[Line]:
        """The last n lines of every slot together, in time order; reading continues after."""
        merged: list[list[Line]] = []
        for slot, segments in self._segments().items():
            reader = self.readers[slot] = SlotReader(self.directory, slot)
            live = reader.open_last(segments)
            merged.append(reader.history(segments, n - len(live)) + live if n > len(live) else live)
        lines = list(heapq.merge(*merged, key=lambda line: line.ts))
        return lines[-n:] if n else []

    def poll(self) -> list[Line]:
        """New lines of every slot (a slot that appears is read from its start), by time."""
        new: list[Line] = []
        for slot, segments in self._segments().items():
            reader = self.readers.get(slot)
            if reader is None:
                reader = self.readers[slot] = SlotReader(self.directory, slot)
            new += reader.poll(segments)
        new.sort(key=lambda line: line.ts)
        return new

    def skipped(self) -> int:
        return sum(r.skipped for r in self.readers.values())


def format_line(bot: str, line: Line) -> str:
    return f"{line.ts} {bot}:{line.slot} {line.stream} {line.text}"


def follow(logs: BotLogs, bot: str, interval_s: float, out: IO[str]) -> None:
    """Print new lines as they come, forever (the caller stops it with Ctrl-C)."""
    import time

    skipped = 0
    while True:
        for line in logs.poll():
            out.write(format_line(bot, line) + "\n")
        out.flush()
        if logs.skipped() != skipped:
            skipped = logs.skipped()
            print(f"supervisor: {skipped} rotated log file(s) of {bot} were deleted "
                  "before they could be read", file=sys.stderr)  # fmt: skip
        time.sleep(interval_s)
