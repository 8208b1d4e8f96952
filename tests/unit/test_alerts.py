"""Alert rules as a table (pending, firing, resolved, for_s), rings and the trend."""

from __future__ import annotations

import math

import pytest

from supervisor.plugins.monitor.alerts import Alert, Rule, State, evaluate
from supervisor.plugins.monitor.series import Ring, slope_per_hour

HIGH = Rule("high", "rss_mb", above=100, for_s=10)


@pytest.mark.parametrize(
    ("alert", "value", "now", "state", "transition"),
    [
        (Alert(), 50, 0, State.OK, ""),
        (Alert(), None, 0, State.OK, ""),  # no value: the condition does not hold
        (Alert(), 150, 0, State.PENDING, "pending"),
        (Alert(State.PENDING, 0), 150, 9.9, State.PENDING, ""),
        (Alert(State.PENDING, 0), 150, 10, State.FIRING, "firing"),
        (Alert(State.PENDING, 0), 50, 5, State.OK, ""),  # cleared before firing: silent
        (Alert(State.FIRING, 0), 150, 99, State.FIRING, ""),
        (Alert(State.FIRING, 0), 50, 99, State.OK, "resolved"),
        (Alert(State.FIRING, 0), None, 99, State.OK, "resolved"),
    ],
)
def test_transitions(
    alert: Alert, value: float | None, now: float, state: State, transition: str
) -> None:
    """ok -> pending when the condition starts holding; firing after for_s; resolved after."""
    new, said = evaluate(HIGH, alert, value, now)
    assert (new.state, said) == (state, transition)


def test_for_zero_fires_at_once_and_below_works() -> None:
    """for_s = 0 skips pending; `below` rules fire under the threshold."""
    low = Rule("idle", "cpu_percent", below=1, for_s=0)
    assert evaluate(low, Alert(), 0.5, 0)[1] == "firing"
    assert evaluate(low, Alert(), 5, 0)[1] == ""


def test_bot_globs() -> None:
    """`bots` is a glob on bot names."""
    rule = Rule("r", "m", bots="queue_*")
    assert rule.applies_to("queue_worker")
    assert not rule.applies_to("echo")


def test_ring_keeps_the_last_values_in_order() -> None:
    """A ring of 3 keeps the 3 newest values, oldest first."""
    ring = Ring(3)
    assert ring.values() == []
    assert ring.last() is None
    for v in range(5):
        ring.append(v)
    assert ring.values() == [2.0, 3.0, 4.0]
    assert ring.last() == 4.0
    assert len(ring) == 3


@pytest.mark.parametrize(
    ("times", "values", "slope"),
    [
        ([0, 10, 20, 30], [100, 100, 100, 100], 0.0),
        ([0, 10, 20, 30], [100, 101, 102, 103], 360.0),  # 0.1 MB/s = 360 MB/h
        ([0, 10, 20, 30], [103, 102, 101, 100], -360.0),
        ([0, 1, 2], [1, 2, 3], None),  # under 10 s of data
        ([0, 20], [1, 2], None),  # two points
        ([0, 10, 20, 30], [100, math.nan, 102, 103], 360.0),  # gaps are skipped
    ],
)
def test_slope_per_hour(times: list[float], values: list[float], slope: float | None) -> None:
    """Memory growth is the least-squares slope, per hour, over enough samples."""
    got = slope_per_hour(times, values)
    assert got == (pytest.approx(slope) if slope is not None else None)


def test_rolling_fit_matches_the_plain_fit_over_its_window() -> None:
    """The O(1) rolling fit gives the least-squares slope of just its window's points."""
    from supervisor.plugins.monitor.series import RollingFit

    fit = RollingFit(window_s=30)
    times = [float(t) for t in range(0, 100, 2)]
    values = [t * 0.1 + (5 if t < 50 else 0) for t in times]  # a step, then a steady climb
    for t, v in zip(times, values, strict=True):
        fit.add(t, v)
    recent = [(t, v) for t, v in zip(times, values, strict=True) if times[-1] - t <= 30]
    expected = slope_per_hour([t for t, _ in recent], [v for _, v in recent])
    assert fit.slope_per_hour() == pytest.approx(expected)
    assert fit.slope_per_hour() == pytest.approx(360.0)
