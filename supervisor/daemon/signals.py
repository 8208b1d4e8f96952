"""The supervisor's signals: flags, not bytes, as trio, Twisted and libuv handle them.

asyncio's `add_signal_handler` sends each signal's number through its wake-up socket and
dispatches by the bytes it reads. That socket holds a few hundred one-byte writes; 2,000
workers stopped in one pass of the loop send 2,000 SIGCHLDs before the loop reads it. Then:

- every later signal is lost, a SIGTERM as much as a SIGCHLD (cpython #74224);
- worse, CPython's C handler reports each failed write by calling Py_AddPendingCall from
  inside the handler, which takes a lock the interrupted main thread may hold: the process
  hangs for good, SIGCHLD blocked, the loop never runs again (cpython #74888). We saw it: a
  shutdown of 2,000 workers unanswered, one run in twenty here, two CI runs of two.

Here the wake-up socket only wakes the loop (its bytes are read and thrown away, and a full
socket is not reported: `warn_on_full_buffer=False`, so the C handler never takes that lock).
What arrived is the interpreter's own per-signal flag: the Python-level handler runs in the
main thread for every signal that tripped, however many times it arrived, and marks it
pending; one callback on the loop then runs each pending signal's handler once. Signals
merge as the kernel merges them (ten SIGCHLDs may be one), and none is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable
from types import FrameType


class Signals:
    """Handlers run on the loop for signals caught in the main thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handlers: dict[int, Callable[[], None]] = {}
        self._pending: set[int] = set()
        self._scheduled = False
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._wake_r, self._wake_w):
            sock.setblocking(False)
        loop.add_reader(self._wake_r.fileno(), self._drain)
        self._previous_wakeup = signal.set_wakeup_fd(
            self._wake_w.fileno(), warn_on_full_buffer=False
        )

    def add(self, sig: int, handler: Callable[[], None]) -> None:
        self._handlers[sig] = handler
        signal.signal(sig, self._tripped)

    def close(self) -> None:
        """Back to the default actions; the wake-up fd as it was before us."""
        for sig in self._handlers:
            signal.signal(sig, signal.SIG_DFL)
        self._handlers.clear()
        signal.set_wakeup_fd(self._previous_wakeup)  # before the socket closes: no EBADF
        self._loop.remove_reader(self._wake_r.fileno())
        self._wake_r.close()
        self._wake_w.close()

    def _tripped(self, signum: int, frame: FrameType | None) -> None:
        """In the main thread, between two bytecodes of whatever ran: mark it, nothing more
        (call_soon_threadsafe only appends to the loop's queue and wakes it)."""
        self._pending.add(signum)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._dispatch)

    def _dispatch(self) -> None:
        """Each pending signal's handler, as a callback of its own (one failing is logged by
        the loop and stops no other). pop() is one step: a signal that trips meanwhile is
        either taken here or by the dispatch it schedules, never by neither."""
        self._scheduled = False
        while self._pending:
            sig = self._pending.pop()
            handler = self._handlers.get(sig)
            if handler is not None:
                self._loop.call_soon(handler)

    def _drain(self) -> None:
        """The wake-up bytes say only "a signal came"; the flags say which."""
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
