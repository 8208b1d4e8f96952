"""The start-up pacing queue as a table: fleet and per-bot caps, round-robin, no limit."""

from __future__ import annotations

import pytest

from supervisor.policy.pacing import Want, grant


@pytest.mark.parametrize(
    ("wants", "fleet_starting", "fleet_cap", "granted"),
    [
        # no caps: everything due starts (today's behaviour)
        ((Want("a", 200, 0),), 0, None, {"a": 200}),
        # the fleet cap: a first wave of 20
        ((Want("a", 200, 0),), 0, 20, {"a": 20}),
        # 15 still starting: 5 more
        ((Want("a", 185, 15),), 15, 20, {"a": 5}),
        # full: none (the bot waits for a worker to become ready)
        ((Want("a", 180, 20),), 20, 20, {}),
        # round-robin over the queue: a big bot does not starve a small one
        ((Want("a", 100, 0), Want("b", 3, 0)), 0, 6, {"a": 3, "b": 3}),
        ((Want("a", 100, 0), Want("b", 2, 0)), 0, 7, {"a": 5, "b": 2}),
        # an odd place goes to the bot first in the queue
        ((Want("a", 100, 0), Want("b", 100, 0)), 0, 5, {"a": 3, "b": 2}),
        # a bot's own cap, with room left in the fleet
        ((Want("a", 100, 2, cap=4), Want("b", 10, 0)), 2, 20, {"a": 2, "b": 10}),
        # a bot's own cap alone
        ((Want("a", 100, 0, cap=8),), 0, None, {"a": 8}),
        ((Want("a", 100, 9, cap=8),), 9, None, {}),  # above its cap (a reload lowered it)
        # others' starting workers count against the fleet cap
        ((Want("b", 10, 0),), 18, 20, {"b": 2}),
        ((), 0, 20, {}),
    ],
)
def test_grant(
    wants: tuple[Want, ...], fleet_starting: int, fleet_cap: int | None, granted: dict[str, int]
) -> None:
    """Free places (fleet cap minus starting) go round-robin, within each bot's own cap."""
    assert grant(wants, fleet_starting, fleet_cap) == granted
