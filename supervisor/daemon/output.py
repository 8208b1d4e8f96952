"""Reading a child's stdout and stderr in the loop, as whole lines.

Each pipe is non-blocking and watched with the loop's reader callback: one
read of at most `_CHUNK` bytes per wake-up, so a worker that floods its
output costs the loop a bounded slice at a time and never blocks it (a
full pipe blocks the flooding worker instead). Lines longer than
`MAX_LINE_BYTES` are cut into pieces.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

MAX_LINE_BYTES = 16384
_CHUNK = 16384


class LineReader:
    """Calls on_line(text) for each line read from fd; on_close() at end of file."""

    def __init__(
        self, fd: int, on_line: Callable[[str], None], on_close: Callable[[], None]
    ) -> None:
        self._fd = fd
        self._on_line = on_line
        self._on_close = on_close
        self._partial = b""
        self._paused = False
        self._loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        while len(self._partial) > MAX_LINE_BYTES:
            lines.append(self._partial[:MAX_LINE_BYTES])
            self._partial = self._partial[MAX_LINE_BYTES:]
        for line in lines:
            self._on_line(_text(line))

    def pause(self) -> None:
        """Stop reading for now: the pipe fills and the writer blocks (backpressure)."""
        if self._fd >= 0 and not self._paused:
            self._loop.remove_reader(self._fd)
            self._paused = True

    def resume(self) -> None:
        if self._fd >= 0 and self._paused:
            self._loop.add_reader(self._fd, self._readable)
            self._paused = False

    def close(self) -> None:
        """Stop reading; a last line without a newline is still delivered."""
        if self._fd < 0:
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        if self._partial:
            self._on_line(_text(self._partial))
            self._partial = b""
        self._on_close()


def _text(line: bytes) -> str:
    return line.rstrip(b"\r").decode("utf-8", errors="replace")
