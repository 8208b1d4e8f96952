"""One-shot bots: what a run's exits add up to, and what a dependent waits for (pure).

A one-shot bot (`kind = "oneshot"`) runs its workers to completion. Exit 0 is success; any
other exit follows the restart policy (on-failure by default) up to `max_restarts`, then the
slot fails. A bot whose `depends_on` names a one-shot starts once every worker of the
one-shot's run has exited 0, and waits, with the reason, while it has not:

    outcome    idle      no worker ran yet (a scheduled one-shot before its first tick)
               running   some worker still runs or is due to run again
               succeeded every wanted worker's last exit was 0
               failed    the bot failed (its restart limit), or a worker stays down after a
                         non-zero exit (restart = "never")
    reason     one line for a dependent's status: "migrate failed: ..." or "migrate exited
               with 3", or "migrate is running"
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SlotRun:
    """One wanted slot of a one-shot, as the outcome reads it."""

    index: int
    alive: bool
    exit_code: int | None  # of its last process; None: none exited yet (or killed by a signal)
    exit_signal: int | None = None
    due: bool = False  # it will run again (first run, or a restart after its backoff)


def outcome(slots: Sequence[SlotRun], bot_failure: str | None) -> Outcome:
    if bot_failure is not None:
        return Outcome.FAILED
    if not slots or any(s.alive or s.due for s in slots):
        return Outcome.RUNNING
    if all(s.exit_code is None and s.exit_signal is None for s in slots):
        return Outcome.IDLE
    if all(s.exit_code == 0 for s in slots):
        return Outcome.SUCCEEDED
    return Outcome.FAILED


def reason(name: str, slots: Sequence[SlotRun], bot_failure: str | None) -> str:
    """Why a bot that depends on this one-shot is still waiting."""
    result = outcome(slots, bot_failure)
    if result is Outcome.SUCCEEDED:
        return ""
    if bot_failure is not None:
        return f"{name} failed: {bot_failure}"
    if result is Outcome.RUNNING:
        return f"{name} is running"
    if result is Outcome.IDLE:
        return f"{name} has not run yet"
    bad = next(s for s in slots if s.exit_code != 0)
    how = f"signal {bad.exit_signal}" if bad.exit_code is None else f"exit code {bad.exit_code}"
    return f"{name} worker {bad.index} ended with {how} and stays down"
