"""Alert rules: a metric above or below a threshold for a while. Pure.

    [[plugins.monitor.alerts]]
    name = "leak"
    metric = "rss_growth_mb_per_h"   # a sampled metric, or one the workers report
    bots = "*"                       # a glob on bot names
    above = 50                       # or below = ...
    for_s = "30s"
    action = "restart"               # log | event | restart

Per worker an alert is ok, pending (the condition holds, not yet for for_s)
or firing; the transitions to pending, firing and resolved (firing, then
the condition no longer holds) are what the monitor reports. No value
counts as the condition not holding.
"""

from __future__ import annotations

import enum
import fnmatch
from dataclasses import dataclass


class Action(enum.StrEnum):
    LOG = "log"  # a warning in the log
    EVENT = "event"  # an event on the stream (and the log)
    RESTART = "restart"  # the event, and the worker is recycled


class State(enum.StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    metric: str
    bots: str = "*"
    above: float | None = None
    below: float | None = None
    for_s: float = 0.0
    action: Action = Action.EVENT

    def applies_to(self, bot: str) -> bool:
        return fnmatch.fnmatchcase(bot, self.bots)

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.above is not None and value > self.above:
            return True
        return self.below is not None and value < self.below


@dataclass(frozen=True, slots=True)
class Alert:
    state: State = State.OK
    since: float = 0.0  # when the condition started holding
    value: float | None = None


def evaluate(rule: Rule, alert: Alert, value: float | None, now: float) -> tuple[Alert, str]:
    """The alert's next state and its transition ("", "pending", "firing" or "resolved")."""
    if not rule.holds(value):
        if alert.state is State.FIRING:
            return Alert(State.OK, now, value), "resolved"
        return Alert(State.OK, now, value), ""
    if alert.state is State.OK:
        if rule.for_s <= 0:
            return Alert(State.FIRING, now, value), "firing"
        return Alert(State.PENDING, now, value), "pending"
    if alert.state is State.PENDING and now - alert.since >= rule.for_s:
        return Alert(State.FIRING, alert.since, value), "firing"
    return Alert(alert.state, alert.since, value), ""
