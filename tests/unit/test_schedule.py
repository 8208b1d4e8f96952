"""Schedules as tables: the next tick (cron in a zone, DST changes, every) and overlap."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from supervisor.policy.schedule import (
    Action,
    Overlap,
    Schedule,
    missed,
    next_tick,
    on_tick,
    valid_cron,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def at(zone: str, *parts: int) -> float:
    return datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp()  # type: ignore[misc]


def wall(zone: str, t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(zone)).isoformat()


@pytest.mark.parametrize(
    ("cron", "zone", "start", "ticks"),
    [
        # every five minutes, UTC
        ("*/5 * * * *", "UTC", (2026, 1, 1, 0, 3), ["2026-01-01T00:05:00+00:00",
                                                    "2026-01-01T00:10:00+00:00"]),
        # strictly after: a start on a tick gives the next one
        ("*/5 * * * *", "UTC", (2026, 1, 1, 0, 5), ["2026-01-01T00:10:00+00:00"]),
        # the zone's wall clock: 09:00 in New York is 14:00 UTC in winter
        ("0 9 * * 1-5", NEW_YORK, (2026, 1, 2, 10, 0), ["2026-01-05T09:00:00-05:00",
                                                        "2026-01-06T09:00:00-05:00"]),
        # spring forward (Berlin, 29 March, 02:00 -> 03:00): 02:30 does not exist; it runs
        # right after the change, then at 02:30 again
        ("30 2 * * *", BERLIN, (2026, 3, 28, 12, 0), ["2026-03-29T03:00:00+02:00",
                                                      "2026-03-30T02:30:00+02:00"]),
        # fall back (Berlin, 25 October, 03:00 -> 02:00): 02:30 happens twice; a nightly job
        # runs once
        ("30 2 * * *", BERLIN, (2026, 10, 24, 12, 0), ["2026-10-25T02:30:00+02:00",
                                                       "2026-10-26T02:30:00+01:00"]),
        # an hourly job runs in both real hours of the repeated one
        ("0 * * * *", BERLIN, (2026, 10, 25, 1, 30), ["2026-10-25T02:00:00+02:00",
                                                      "2026-10-25T02:00:00+01:00",
                                                      "2026-10-25T03:00:00+01:00"]),
        # and skips the hour that does not exist
        ("0 * * * *", BERLIN, (2026, 3, 29, 1, 30), ["2026-03-29T03:00:00+02:00",
                                                     "2026-03-29T04:00:00+02:00"]),
        # New York's own dates (8 March 2026, 02:00 -> 03:00)
        ("15 2 * * *", NEW_YORK, (2026, 3, 7, 12, 0), ["2026-03-08T03:00:00-04:00",
                                                       "2026-03-09T02:15:00-04:00"]),
    ],
)  # fmt: skip
def test_next_cron_tick(cron: str, zone: str, start: tuple[int, ...], ticks: list[str]) -> None:
    """Cron ticks on the zone's wall clock, with Vixie cron's DST rules."""
    schedule = Schedule(cron=cron, timezone=zone)
    t = at(zone, *start)
    seen = []
    for _ in ticks:
        t = next_tick(schedule, t)
        seen.append(wall(zone, t))
    assert seen == ticks


@pytest.mark.parametrize(
    ("every_s", "anchor", "after", "tick"),
    [
        (30, 100, 100, 130),  # the first tick is one period after the start
        (30, 100, 129.9, 130),
        (30, 100, 130, 160),  # strictly after
        (30, 100, 1000, 1030),  # long after (a slow loop): the next on the grid, no burst
        (2, 0, 0.5, 2),
    ],
)
def test_next_every_tick(every_s: float, anchor: float, after: float, tick: float) -> None:
    """`every` ticks on a grid from the anchor; missed ticks are not run in a burst."""
    assert next_tick(Schedule(every_s=every_s), after, anchor) == tick


@pytest.mark.parametrize(
    ("overlap", "running", "queued", "action"),
    [
        (Overlap.SKIP, False, False, Action.START),
        (Overlap.QUEUE, False, False, Action.START),
        (Overlap.REPLACE, False, False, Action.START),
        (Overlap.SKIP, True, False, Action.SKIP),
        (Overlap.QUEUE, True, False, Action.QUEUE),
        (Overlap.QUEUE, True, True, Action.SKIP),  # at most one run waits
        (Overlap.REPLACE, True, False, Action.REPLACE),
    ],
)
def test_overlap(overlap: Overlap, running: bool, queued: bool, action: Action) -> None:
    """A tick while the last run still goes: skip it, queue one run, or replace the run."""
    assert on_tick(overlap, running, queued) is action


def test_catch_up() -> None:
    """Only with catch_up, only for cron, and only if a tick fell while the supervisor was
    down."""
    nightly = Schedule(cron="0 3 * * *", catch_up=True)
    last = at("UTC", 2026, 5, 1, 3, 0)
    assert missed(nightly, last, at("UTC", 2026, 5, 2, 9, 0))
    assert not missed(nightly, last, at("UTC", 2026, 5, 2, 2, 0))
    assert not missed(Schedule(cron="0 3 * * *"), last, at("UTC", 2026, 5, 9, 0, 0))
    assert not missed(nightly, None, at("UTC", 2026, 5, 9, 0, 0))


@pytest.mark.parametrize(
    ("expression", "ok"),
    [("*/5 * * * *", True), ("0 9 * * 1-5", True), ("61 * * * *", False), ("* * *", False),
     ("* * * * * *", False), ("every day", False)],
)  # fmt: skip
def test_valid_cron(expression: str, ok: bool) -> None:
    """Five fields, each in range (croniter's own check)."""
    assert valid_cron(expression) is ok
