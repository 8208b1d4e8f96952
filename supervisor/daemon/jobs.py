"""A one-shot bot's runs as the fleet records them, and what its dependents wait for.

The fleet calls `started` when a worker of a one-shot spawns and `exited` when it ends;
`status` is the bot's `job` section (last run, exit code, duration, runs). The verdict on
a run (running, succeeded, failed) and the line a waiting dependent shows are
policy/oneshot.py's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from supervisor.daemon.slots import BotState, Slot
from supervisor.policy import oneshot, restart

# A one-shot bot's state is its run's outcome.
ONESHOT_STATES = {
    oneshot.Outcome.IDLE: BotState.SCHEDULED,
    oneshot.Outcome.RUNNING: BotState.RUNNING,
    oneshot.Outcome.SUCCEEDED: BotState.SUCCEEDED,
    oneshot.Outcome.FAILED: BotState.FAILED,
}


@dataclass
class JobRecord:
    runs: int = 0  # worker processes started
    last_started_at: float | None = None  # wall clock
    last_exit_code: int | None = None
    last_signal: int | None = None
    last_duration_s: float | None = None
    # A schedule's (daemon/schedules.py): wall-clock ticks, and what they did.
    schedule: str = ""
    next_run_at: float | None = None
    last_tick_at: float | None = None
    ticks: int = 0
    skipped: int = 0
    queued: bool = False

    def started(self) -> None:
        self.runs += 1
        self.last_started_at = time.time()

    def exited(self, status: restart.Exit, uptime_s: float) -> None:
        self.last_exit_code, self.last_signal = status.code, status.signal
        self.last_duration_s = round(uptime_s, 3)

    def status(self, outcome: oneshot.Outcome) -> dict[str, Any]:
        result = {
            "outcome": outcome.value,
            "runs": self.runs,
            "last_run": _iso(self.last_started_at),
            "exit_code": self.last_exit_code,
            "signal": self.last_signal,
            "duration_s": self.last_duration_s,
        }
        if self.schedule:
            result |= {
                "schedule": self.schedule,
                "next_run": _iso(self.next_run_at),
                "last_tick": _iso(self.last_tick_at),
                "ticks": self.ticks,
                "skipped": self.skipped,
                "queued": self.queued,
            }
        return result


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def runs(slots: Iterable[Slot], wanted: Iterable[int]) -> list[oneshot.SlotRun]:
    """The wanted slots of a one-shot as policy/oneshot.py reads them."""
    by_index = {s.index: s for s in slots}
    result = []
    for index in sorted(wanted):
        slot = by_index.get(index)
        if slot is None:
            result.append(oneshot.SlotRun(index, False, None, due=True))  # not spawned yet
            continue
        due = slot.spawning or (not slot.held and slot.restart_at is not None)
        code, sig = slot.last_exit or (None, None)
        result.append(oneshot.SlotRun(index, slot.alive, code, sig, due=due and not slot.alive))
    return result
