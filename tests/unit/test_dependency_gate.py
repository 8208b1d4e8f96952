"""The dependency gate as tables: exits held while a need is down, one event per transition."""

from __future__ import annotations

import pytest

from supervisor.policy.dependency_gate import Gate, OnExit, observe, on_exit, retry_delay_s

REDIS = "redis://127.0.0.1:6379"
PG = "postgresql://postgres@127.0.0.1/test"


@pytest.mark.parametrize(
    ("gate", "has_needs", "verdict"),
    [
        (Gate(), False, OnExit.COUNT),  # no needs: the restart policy decides
        (Gate(), True, OnExit.CHECK),  # needs all up so far: ask them before counting
        (Gate((REDIS,), 1), True, OnExit.HOLD),  # Redis is down: not counted, not restarted
    ],
)
def test_on_exit(gate: Gate, has_needs: bool, verdict: OnExit) -> None:
    """An exit is counted only once the needs are known to answer."""
    assert on_exit(gate, has_needs) is verdict


def test_down_exits_not_counted_up_restarts() -> None:
    """down -> exits held -> still down (no new event) -> up: resume once, one event each way."""
    first = observe(Gate(), {REDIS: False, PG: True})
    assert first.went_down == (REDIS,)
    assert not first.came_up
    assert not first.resume
    assert on_exit(first.gate, True) is OnExit.HOLD
    again = observe(first.gate, {REDIS: False, PG: True})
    assert again.went_down == ()
    assert again.gate.failed_rounds == 2
    back = observe(again.gate, {REDIS: True, PG: True})
    assert back.came_up == (REDIS,)
    assert back.resume
    assert back.gate == Gate()
    assert on_exit(back.gate, True) is OnExit.CHECK


@pytest.mark.parametrize(
    ("before", "answers", "after"),
    [
        (Gate(), {REDIS: True}, ((), (), (), False)),  # all up: nothing happens
        (Gate((REDIS,), 1), {REDIS: False, PG: False}, ((REDIS, PG), (PG,), (), False)),
        (Gate((REDIS, PG), 3), {REDIS: True, PG: False}, ((PG,), (), (REDIS,), False)),
        (Gate((PG,), 4), {REDIS: True, PG: True}, ((), (), (PG,), True)),
    ],
)
def test_observe_transitions(
    before: Gate,
    answers: dict[str, bool],
    after: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], bool],
) -> None:
    """Each need's transition (down, went down, came up, resume) is reported once."""
    seen = observe(before, answers)
    assert (seen.gate.down, seen.went_down, seen.came_up, seen.resume) == after


@pytest.mark.parametrize(
    ("gate", "delay_s"),
    [
        (Gate(), 0.0),
        (Gate((REDIS,), 1), 0.1),
        (Gate((REDIS,), 2), 0.2),
        (Gate((REDIS,), 4), 0.8),
        (Gate((REDIS,), 10), 2.0),  # capped: the bot resumes soon after the service
    ],
)
def test_retry_backoff(gate: Gate, delay_s: float) -> None:
    """Checks back off while a need is down, up to a short cap."""
    assert retry_delay_s(gate) == pytest.approx(delay_s)
