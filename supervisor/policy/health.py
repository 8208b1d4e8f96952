"""Is a worker ready, and is it alive? The watchdog's pure decision.

A worker that uses the SDK (it said HELLO, or its bot is known to) is ready
when it says READY, and is killed if that takes longer than `ready_timeout_s`
(0: no limit); once ready, it is killed if its heartbeats stop for
`heartbeat_timeout_s` (0 turns that off). Any other worker counts as ready
once it has been up `ready_after_s`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    WAIT = "wait"  # nothing to do yet
    READY = "ready"  # a bot without the SDK: it has been up long enough
    NOT_READY = "not_ready"  # kill: never said READY in time
    SILENT = "silent"  # kill: heartbeats stopped


@dataclass(frozen=True, slots=True)
class Limits:
    ready_after_s: float
    ready_timeout_s: float
    heartbeat_timeout_s: float


@dataclass(frozen=True, slots=True)
class Seen:
    """What the channel knows of a worker, as times on one monotonic clock."""

    started_at: float
    sdk: bool  # it said HELLO, or its bot's readiness is "sdk"
    ready: bool
    ready_at: float | None
    last_heartbeat: float | None


def check(limits: Limits, seen: Seen, now: float) -> tuple[Verdict, str]:
    """The verdict and, for a kill, why."""
    up_s = now - seen.started_at
    if not seen.ready:
        if not seen.sdk:
            return (Verdict.READY, "") if up_s >= limits.ready_after_s else (Verdict.WAIT, "")
        if 0 < limits.ready_timeout_s < up_s:
            return Verdict.NOT_READY, f"not ready {limits.ready_timeout_s:g}s after start"
        return Verdict.WAIT, ""
    if not seen.sdk or limits.heartbeat_timeout_s <= 0:
        return Verdict.WAIT, ""
    last = max(t for t in (seen.last_heartbeat, seen.ready_at, seen.started_at) if t is not None)
    silent_s = now - last
    if silent_s > limits.heartbeat_timeout_s:
        return Verdict.SILENT, f"no heartbeat for {silent_s:.1f}s"
    return Verdict.WAIT, ""
