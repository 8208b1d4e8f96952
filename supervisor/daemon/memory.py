"""The supervisor's own memory after a flood: freed heap is given back to the OS.

A flood of frames (bench/fuzz.py: a million hostile ones from thousands of identities) is
queued by libzmq's I/O thread faster than the loop reads it; every queued message is a malloc
in that thread's arena. Once read and dropped, the memory is free but glibc keeps it: RSS
stayed at its peak (36.7 MiB before, 208 MiB after). `malloc_trim(0)` returns the free pages
of every arena. It walks the heap, so it runs only once a burst is over: when the frame
counters moved by at least `burst_frames` since the last look and then stood (almost) still
for one `every_s`. While no frame arrives it has no timer: it waits for `arrived()`, which
the sockets' receive loops call, so an idle fleet's loop is not woken for it.

Python objects are not the cause (tracemalloc: a few MiB traced before and after); what we
keep per peer is bounded elsewhere (policy/admission.py max_peers, channel._RECENTLY_CLOSED,
the control socket's RCVHWM).
"""

from __future__ import annotations

import ctypes
import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from supervisor.procfs import stat_fields

log = structlog.get_logger("supervisor.memory")

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _libc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


@dataclass
class Trimmer:
    """Give memory back after bursts of frames; `frames()` counts what the sockets took in."""

    frames: Callable[[], int]
    every_s: float = 5.0
    burst_frames: int = 10_000
    trims: int = 0
    freed_bytes: int = 0  # RSS before minus after, summed over trims
    _trim: Callable[[int], int] | None = None
    _quiet: anyio.Event | None = None  # set by arrived(): frames flow again

    def arrived(self) -> None:
        """A socket took in frames (called once per receive, not per frame)."""
        if self._quiet is not None:
            self._quiet.set()
            self._quiet = None

    async def run(self) -> None:
        self._trim = _libc_trim()
        if self._trim is None:
            return
        last, in_burst = self.frames(), False
        while True:
            await anyio.sleep(self.every_s)
            now = self.frames()
            moved, last = now - last, now
            in_burst, due = after_look(in_burst, moved, self.burst_frames)
            if due:
                self.trim()
            if moved == 0 and not in_burst:  # nothing flows: no timer until something does
                self._quiet = quiet = anyio.Event()
                await quiet.wait()
                last = self.frames()

    def trim(self) -> None:
        if self._trim is None:
            return
        before, started = _rss_bytes(), time.perf_counter()
        self._trim(0)
        after = _rss_bytes()
        self.trims += 1
        self.freed_bytes += max(0, before - after)
        took_ms = round(1e3 * (time.perf_counter() - started), 1)
        log.info(
            "memory_trimmed", rss_before_mb=round(before / 2**20, 1),
            rss_after_mb=round(after / 2**20, 1), took_ms=took_ms,
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        """Its counts, and Python's own share when tracing (python -X tracemalloc)."""
        traced = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else None
        return {
            "rss_bytes": _rss_bytes(),
            "trims": self.trims,
            "freed_bytes": self.freed_bytes,
            "python_traced_bytes": traced[0] if traced else None,
            "python_traced_peak_bytes": traced[1] if traced else None,
        }


def after_look(in_burst: bool, moved: int, burst_frames: int) -> tuple[bool, bool]:
    """(in a burst now, trim now) after a look that saw `moved` more frames than the last."""
    if moved >= burst_frames:
        return True, False  # still flooding: the memory is in use, a trim would free nothing
    if in_burst and moved < burst_frames // 10:
        return False, True  # the burst is over: give back what it left
    return in_burst, False


def _rss_bytes() -> int:
    fields = stat_fields(os.getpid())
    return int(fields[21]) * _PAGE_BYTES if fields is not None else 0
