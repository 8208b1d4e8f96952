"""Schedules of one-shot bots: the next tick, and what a tick does to a run (pure).

    schedule = "*/5 * * * *"   # cron, parsed by croniter (pallets-eco/croniter)
    timezone = "Europe/Paris"  # the cron's wall clock; UTC by default
    every = "30s"              # or a fixed period, from the supervisor's start
    overlap = "skip"           # the last run still going at a tick: skip | queue | replace
    catch_up = false           # ticks missed while the supervisor was down: one run at start

next_tick   the first tick after `after` (epoch seconds). `every`: anchor + k * period. cron:
            croniter in the zone. DST as Vixie cron does it: a time skipped by the spring
            change runs right after it (croniter's own answer); a fixed-hour time repeated by
            the autumn change runs once (croniter answers both; the second is dropped), while
            an hourly (`*` hour) entry runs in both real hours.
on_tick     start a run; or, with one going, skip the tick, queue one run (at most one
            waits), or replace the run (stop its workers, start again)
missed      with catch_up, was there a tick between the last one seen and now?

Nothing here reads a clock; the time zones come from the system's tz database.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

MIN_EVERY_S = 1.0  # a shorter period is a busy loop, not a schedule


class Overlap(enum.StrEnum):
    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"


class Action(enum.StrEnum):
    START = "start"
    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str = ""  # a cron expression, or "" with every_s
    every_s: float = 0.0
    timezone: str = "UTC"
    overlap: Overlap = Overlap.SKIP
    catch_up: bool = False

    def describe(self) -> str:
        if self.cron:
            return f"{self.cron} ({self.timezone})"
        return f"every {self.every_s:g}s"


def next_tick(schedule: Schedule, after: float, anchor: float = 0.0) -> float:
    """The first tick strictly after `after`; `every` counts from `anchor`."""
    if not schedule.cron:
        periods = math.floor((after - anchor) / schedule.every_s) + 1
        return anchor + max(1, periods) * schedule.every_s
    from croniter import croniter  # noqa: PLC0415  (only fleets with a cron schedule pay for it)

    zone = ZoneInfo(schedule.timezone)
    ticks = croniter(schedule.cron, datetime.fromtimestamp(after, zone))
    fixed_hour = "*" not in schedule.cron.split()[1]
    while True:
        tick: datetime = ticks.get_next(datetime)
        if fixed_hour and _repeated(tick, zone):
            continue  # the autumn change repeats this wall time: it ran at the first
        return tick.timestamp()


def _repeated(tick: datetime, zone: ZoneInfo) -> bool:
    """Is this the second occurrence of a wall time (the hour the autumn change repeats)?"""
    first = tick.replace(tzinfo=None).replace(tzinfo=zone, fold=0)
    return first.utcoffset() != tick.utcoffset() and first.timestamp() < tick.timestamp()


def on_tick(overlap: Overlap, running: bool, queued: bool) -> Action:
    """What a tick does, given whether the last run is still going and one already waits."""
    if not running:
        return Action.START
    if overlap is Overlap.SKIP or (overlap is Overlap.QUEUE and queued):
        return Action.SKIP
    return Action.QUEUE if overlap is Overlap.QUEUE else Action.REPLACE


def missed(schedule: Schedule, last_tick: float | None, now: float) -> bool:
    """With catch_up: a tick fell between the last one seen and now (one run makes up)."""
    if not schedule.catch_up or last_tick is None or not schedule.cron:
        return False  # `every` restarts its period with the supervisor: nothing to make up
    return next_tick(schedule, last_tick) <= now


def valid_cron(expression: str) -> bool:
    from croniter import croniter  # noqa: PLC0415  (as in next_tick)

    return len(expression.split()) == 5 and bool(croniter.is_valid(expression))
