"""`kill -QUIT <supervisor pid>`: where the supervisor is, written to its stderr.

Two views, because a stuck supervisor is stuck in one of two ways. faulthandler's C-level
handler writes every thread's Python stack at once, even while the loop is blocked in a call
that never returns. Then, if the loop is free, it writes each distinct task stack with how many
tasks wait there (2,000 workers being stopped are one line, not 2,000): a loop that is idle
while a request goes unanswered is waiting on something, and this says what.

The process keeps running; SIGQUIT no longer dumps core (as the JVM's thread dump).
"""

from __future__ import annotations

import asyncio
import collections
import faulthandler
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.daemon.signals import Signals

_FRAMES = 6  # innermost frames shown per task


def install(signals: Signals) -> None:
    """After the loop's own handler: faulthandler chains to it."""
    signals.add(signal.SIGQUIT, dump_tasks)
    faulthandler.register(signal.SIGQUIT, file=sys.stderr, all_threads=True, chain=True)


def remove() -> None:
    """Before the loop's handler goes (Signals.close)."""
    faulthandler.unregister(signal.SIGQUIT)


def task_stacks() -> list[tuple[int, str]]:
    """(how many tasks, their stack) for each distinct stack, most tasks first."""
    seen: collections.Counter[str] = collections.Counter()
    for task in asyncio.all_tasks():
        frames = _awaiting(task.get_coro())[-_FRAMES:]
        lines = [f"  {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" for f in frames]
        seen["\n".join(lines) or "  (not started)"] += 1
    return [(n, stack) for stack, n in seen.most_common()]


def _awaiting(coro: Any) -> list[FrameType]:
    """The chain of frames a task is suspended in, outermost first (Task.get_stack gives
    only the task's own coroutine; what it awaits is followed through cr_await here)."""
    frames: list[FrameType] = []
    while coro is not None and len(frames) < 100:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return frames


def dump_tasks() -> None:
    out = [f"supervisor tasks ({len(asyncio.all_tasks())}):"]
    for count, stack in task_stacks():
        out.append(f"{count} task(s) at:\n{stack}")
    print("\n".join(out), file=sys.stderr, flush=True)
