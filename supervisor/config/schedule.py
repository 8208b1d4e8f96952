"""A bot's schedule keys, read into a `schedule.Schedule` (croniter checks the cron).

[bots.report]
kind = "oneshot"              # implied by schedule or every
schedule = "0 3 * * *"        # cron: minute hour day month weekday
timezone = "Europe/Paris"     # the cron's wall clock (default UTC)
# every = "30s"               # or a fixed period (at least 1s)
overlap = "skip"              # skip | queue | replace, when the last run still goes
catch_up = false              # run once at start if a tick was missed while down
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from supervisor.config.fields import BadValue, Table, duration, enum_choice, string
from supervisor.policy.schedule import MIN_EVERY_S, Overlap, Schedule, valid_cron

KEYS = ("schedule", "every", "timezone", "overlap", "catch_up")


def take_schedule(table: Table) -> Schedule | None:
    """The schedule, or None without one (problems recorded with their key paths)."""
    if not any(table.has(k) for k in KEYS):
        return None
    if not (table.has("schedule") or table.has("every")):
        key = next(k for k in KEYS if table.has(k))
        table.problems.append(f'{table.key_path(key)}: only with "schedule" or "every"')
    if table.has("schedule") and table.has("every"):
        table.problems.append(f'{table.key_path("every")}: give "schedule" or "every", not both')
    every_s = table.take("every", duration, 0.0)
    if table.has("every") and every_s < MIN_EVERY_S:
        table.problems.append(
            f"{table.key_path('every')}: at least {MIN_EVERY_S:g}s, got {every_s:g}s"
        )
    return Schedule(
        cron=table.take("schedule", _cron, ""),
        every_s=every_s,
        timezone=table.take("timezone", _zone, "UTC"),
        overlap=table.take("overlap", enum_choice(Overlap), Overlap.SKIP),
        catch_up=table.take("catch_up", _boolean, False),
    )


def _cron(value: Any) -> str:
    text = string(value)
    if not valid_cron(text):
        raise BadValue(f"not a cron expression (minute hour day month weekday): {text!r}")
    return text


def _zone(value: Any) -> str:
    name = string(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadValue(f'unknown time zone {name!r} (e.g. "Europe/Paris", "UTC")') from None
    return name


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected true or false, got {value!r}")
    return value
