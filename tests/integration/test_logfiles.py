"""The log writer under a stalled disk: the worker's pipe stops being read (the worker
blocks on it), the supervisor's loop keeps running, memory stays bounded, and once the disk
moves again every line arrives, in order, exactly once.

A FIFO stands in for the log segment: opening it for writing blocks the writer thread
until the test opens the other end, as a hung disk would.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anyio

from supervisor.config.logs import LogSettings
from supervisor.daemon.logfiles import _HIGH_BYTES, LogWriter

LINES = 40_000


def read_fifo(path: Path, lines: int, into: list[bytes]) -> None:
    """The disk comes back: read the segment until it holds `lines` lines."""
    data = b""
    with open(path, "rb") as f:
        while data.count(b"\n") < lines and (chunk := f.read1(1 << 16)):
            data += chunk
    into.extend(data.splitlines())


async def flood_through_a_stalled_writer(
    root: Path,
) -> tuple[list[str], list[bytes], dict[str, int]]:
    segment = root / "b" / "0.00000001.log"
    segment.parent.mkdir(parents=True)
    os.mkfifo(segment)
    writer = LogWriter(root)
    writer.start()
    wlog = writer.open("b", 0, LogSettings(max_bytes=0))
    r, w = os.pipe()
    os.set_blocking(w, False)
    delivered: list[str] = []
    wlog.read(r, pid=7, stream="stdout", on_line=delivered.append)
    seen: dict[str, int] = {"ticks": 0, "pending_max": 0}
    on_disk: list[bytes] = []
    disk: threading.Thread | None = None
    pending = b"".join(f"line {i:>10} {'x' * 38}\n".encode() for i in range(LINES))
    with anyio.fail_after(60):
        while pending:
            try:
                pending = pending[os.write(w, pending) :]
            except BlockingIOError:  # the pipe is full: nobody reads it
                seen["ticks"] += 1  # ... and still the loop runs this task
                seen["pending_max"] = max(seen["pending_max"], wlog.pending_bytes)
                if wlog.paused and disk is None:
                    seen["paused_at"] = wlog.pending_bytes
                    seen["delivered_while_paused"] = len(delivered)
                    disk = threading.Thread(target=read_fifo, args=(segment, LINES, on_disk))
                    disk.start()
                await anyio.sleep(0.005)
        os.close(w)
        while wlog.busy:  # noqa: ASYNC110  (the reader and the writer thread finish on their own)
            await anyio.sleep(0.005)
    writer.close()
    assert disk is not None, "the reader never paused"
    disk.join(timeout=30)
    return delivered, on_disk, seen


def test_a_stalled_disk_pauses_the_pipe_not_the_loop_and_loses_nothing(tmp_path: Path) -> None:
    """A writer stuck on its file pauses the pipe at the high-water mark; every line arrives."""
    delivered, on_disk, seen = anyio.run(flood_through_a_stalled_writer, tmp_path / "logs")
    assert seen["ticks"] > 0
    # Paused once past the high-water mark, at most one pipe read (16 KiB of lines) later.
    assert _HIGH_BYTES < seen["paused_at"] < _HIGH_BYTES + 2 * (16 << 10) * 2
    assert seen["pending_max"] == seen["paused_at"]  # nothing more was read while paused
    assert seen["delivered_while_paused"] < LINES
    expected = [f"line {i:>10} {'x' * 38}" for i in range(LINES)]
    assert delivered == expected
    assert [line.split(b" ", 3)[3].decode() for line in on_disk] == expected


async def write_lines(root: Path, settings: LogSettings, texts: list[str]) -> None:
    writer = LogWriter(root)
    writer.start()
    wlog = writer.open("b", 0, settings)
    for text in texts:
        wlog.write(7, "stdout", text)
    with anyio.fail_after(60):  # bounded: a writer that never drains fails the test
        while wlog.busy:  # noqa: ASYNC110  (the writer thread empties it)
            await anyio.sleep(0.005)
    writer.close()


def test_a_new_run_goes_on_in_the_last_file_and_ends_a_line_cut_short(tmp_path: Path) -> None:
    """A run killed mid-line leaves a line without its newline: the next run ends it before
    its own lines, in the same file while it has room, then rotates into the next."""
    segment = tmp_path / "b" / "0.00000004.log"
    segment.parent.mkdir(parents=True)
    segment.write_bytes(
        b"2026-01-01T00:00:00.000000Z stdout 1 whole\n2026-01-01T00:00:00.000000Z stdout 1 cut sho"
    )
    settings = LogSettings(max_bytes=1024, backups=10)
    anyio.run(write_lines, tmp_path, settings, [f"new {i}" for i in range(30)])
    texts = [line.split(b" ", 3)[3].decode() for line in segment.read_bytes().splitlines()]
    assert texts[:3] == ["whole", "cut sho", "new 0"]
    later = (tmp_path / "b" / "0.00000005.log").read_bytes().splitlines()
    assert [line.split(b" ", 3)[3].decode() for line in later][-1] == "new 29"
    assert (tmp_path / "b" / "0.log").readlink().name == "0.00000005.log"
