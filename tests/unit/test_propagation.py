"""When a bot counts as restarted (for restart propagation), as a table."""

from __future__ import annotations

import pytest

from supervisor.policy.propagation import full_set


@pytest.mark.parametrize(
    ("starts", "target", "mark", "restarted", "new_mark"),
    [
        ((1.0,), 2, None, False, None),  # still starting: no full set yet
        ((1.0, 2.0), 2, None, False, 2.0),  # the first full set only sets the mark
        ((3.0, 4.0), 2, 2.0, True, 4.0),  # every worker started after it: restarted
        ((1.0, 4.0), 2, 2.0, False, 2.0),  # one replaced (a crash): no restart yet
        ((5.0, 4.0), 2, 2.0, True, 5.0),  # ... then the other: all replaced, one by one
        ((1.0, 2.0, 5.0), 3, 2.0, False, 2.0),  # scaled up: the old ones still run
        ((), 0, 2.0, False, 2.0),  # scaled to zero
    ],
)
def test_full_set(
    starts: tuple[float, ...],
    target: int,
    mark: float | None,
    restarted: bool,
    new_mark: float | None,
) -> None:
    """A restart is a full set of desired workers, each started after the last full set."""
    assert full_set(starts, target, mark) == (restarted, new_mark)
