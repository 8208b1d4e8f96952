"""When the supervisor trims its heap: once a burst of frames is over, not during it."""

from __future__ import annotations

import pytest

from supervisor.daemon.memory import after_look


@pytest.mark.parametrize(
    ("in_burst", "moved", "after"),
    [
        (False, 50, (False, False)),  # quiet: nothing to give back
        (False, 20_000, (True, False)),  # a burst begins: memory in use, no trim
        (True, 20_000, (True, False)),  # it goes on
        (True, 5_000, (True, False)),  # slower, not over
        (True, 999, (False, True)),  # over: trim once
        (False, 999, (False, False)),  # and not again
    ],
)
def test_trim_once_after_a_burst(in_burst: bool, moved: int, after: tuple[bool, bool]) -> None:
    assert after_look(in_burst, moved, burst_frames=10_000) == after
