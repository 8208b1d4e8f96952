"""When a bot counts as restarted, for restart propagation along `depends_on` (pure).

A bot restarted when every one of its desired workers started after the newest start of
its last full set, at once or one by one: `supervisor restart`, a rolling restart, or
crashes that in the end replaced each of them. Scaling up adds workers but keeps the old
ones, so it is no restart.
"""

from __future__ import annotations

from collections.abc import Sequence


def full_set(
    starts: Sequence[float], target: int, last_full_set_at: float | None
) -> tuple[bool, float | None]:
    """(restarted, the new mark) from the start times of the live desired workers."""
    if target <= 0 or len(starts) < target:
        return False, last_full_set_at
    if last_full_set_at is None:
        return False, max(starts)  # the first full set only sets the mark
    if min(starts) > last_full_set_at:
        return True, max(starts)
    return False, last_full_set_at  # some of the last set still run
