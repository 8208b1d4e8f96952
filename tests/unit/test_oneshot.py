"""One-shot runs as a table: what the exits add up to, and the reason a dependent waits."""

from __future__ import annotations

import pytest

from supervisor.policy.oneshot import Outcome, SlotRun, outcome, reason


@pytest.mark.parametrize(
    ("slots", "failure", "result", "why"),
    [
        ((SlotRun(0, alive=True, exit_code=None),), None, Outcome.RUNNING, "m is running"),
        ((SlotRun(0, False, None, due=True),), None, Outcome.RUNNING, "m is running"),
        ((), None, Outcome.RUNNING, "m is running"),  # not spawned yet
        ((SlotRun(0, False, 0),), None, Outcome.SUCCEEDED, ""),
        # a scheduled one-shot before its first tick
        ((SlotRun(0, False, None),), None, Outcome.IDLE, "m has not run yet"),
        ((SlotRun(0, False, 0), SlotRun(1, True, None)), None, Outcome.RUNNING, "m is running"),
        # a failure being retried is still running
        ((SlotRun(0, False, 1, due=True),), None, Outcome.RUNNING, "m is running"),
        # the restart limit failed the bot
        ((SlotRun(0, False, 1),), "1 of 1 workers failed", Outcome.FAILED,
         "m failed: 1 of 1 workers failed"),
        # restart = "never": it stays down after a non-zero exit
        ((SlotRun(0, False, 0), SlotRun(1, False, 3)), None, Outcome.FAILED,
         "m worker 1 ended with exit code 3 and stays down"),
        ((SlotRun(0, False, None, exit_signal=9),), None, Outcome.FAILED,
         "m worker 0 ended with signal 9 and stays down"),
    ],
)  # fmt: skip
def test_outcome_and_reason(
    slots: tuple[SlotRun, ...], failure: str | None, result: Outcome, why: str
) -> None:
    """Succeeded only when every wanted worker's last exit was 0 and none will run again."""
    assert outcome(slots, failure) is result
    assert reason("m", slots, failure) == why
