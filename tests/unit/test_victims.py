"""Scale-down victim choice and the kept slot numbers, as tables."""

from __future__ import annotations

import pytest

from supervisor.policy.victims import Candidate, busy_of, choose, resize

C = Candidate


@pytest.mark.parametrize(
    ("candidates", "count", "victims"),
    [
        # equal workers: today's order, the highest slot first
        ((C(0), C(1), C(2), C(3)), 2, (3, 2)),
        # the SDK's busy gauge: the idle go first, whatever their slot
        ((C(0, busy=0), C(1, busy=0), C(2, busy=0), C(3, busy=1)), 3, (2, 1, 0)),
        ((C(0, busy=5), C(1, busy=2), C(2, busy=9)), 1, (1,)),
        # no busy: the least CPU over the last window
        ((C(0, cpu_percent=80), C(1, cpu_percent=2), C(2, cpu_percent=40)), 2, (1, 2)),
        # busy first, CPU only breaks its ties
        ((C(0, busy=0, cpu_percent=90), C(1, busy=1, cpu_percent=0)), 1, (0,)),
        ((C(0, busy=0, cpu_percent=90), C(1, busy=0, cpu_percent=10)), 1, (1,)),
        # no process (backoff, failed) before starting workers before ready ones
        ((C(0, busy=0), C(1, ready=False, busy=3), C(2, alive=False, ready=False)), 2, (2, 1)),
        # a worker reporting nothing counts as holding nothing
        ((C(0, busy=1), C(1)), 1, (1,)),
        ((C(0), C(1)), 0, ()),
    ],
)
def test_choose(candidates: tuple[Candidate, ...], count: int, victims: tuple[int, ...]) -> None:
    """Stop the workers with the least work first; the highest slot breaks ties."""
    assert choose(candidates, count) == victims


@pytest.mark.parametrize(
    ("kept", "desired", "candidates", "after"),
    [
        ((), 3, (), (0, 1, 2)),  # a new bot
        ((0, 1, 2), 3, (), (0, 1, 2)),  # no change
        ((0, 1, 2, 3), 1, (C(0, busy=0), C(1, busy=0), C(2, busy=0), C(3, busy=1)), (3,)),
        ((3,), 2, (), (0, 3)),  # a scale-up fills the lowest hole first
        ((0, 2, 5), 5, (), (0, 1, 2, 3, 5)),
        ((0, 1, 2), 2, (C(0), C(2)), (0, 2)),  # slot 1 has no process: it goes first
        ((0, 1), 0, (C(0), C(1)), ()),
    ],
)
def test_resize(
    kept: tuple[int, ...], desired: int, candidates: tuple[Candidate, ...], after: tuple[int, ...]
) -> None:
    """Slots are never renumbered: holes stay until a scale-up fills them, lowest first."""
    assert resize(kept, desired, {c.index: c for c in candidates}) == after


def test_busy_of() -> None:
    """The SDK's busy gauge, else a bot's inflight gauge, else nothing known."""
    assert busy_of({"busy": 2, "inflight": 7}) == 2
    assert busy_of({"inflight": 7}) == 7
    assert busy_of({"queue_depth": 7}) is None
