"""The watchdog's verdict as a table: readiness with and without the SDK, silence."""

from __future__ import annotations

import pytest

from supervisor.policy.health import Limits, Seen, Verdict, check

LIMITS = Limits(ready_after_s=1.0, ready_timeout_s=10.0, heartbeat_timeout_s=4.0)


@pytest.mark.parametrize(
    ("seen", "now", "verdict"),
    [
        (Seen(0.0, False, False, None, None), 0.5, Verdict.WAIT),  # no SDK yet: wait
        (Seen(0.0, False, False, None, None), 1.0, Verdict.READY),  # no SDK: ready after 1 s
        (Seen(0.0, True, False, None, None), 5.0, Verdict.WAIT),  # SDK, not READY yet
        (Seen(0.0, True, False, None, None), 10.5, Verdict.NOT_READY),  # too long
        (Seen(0.0, True, True, 2.0, None), 5.9, Verdict.WAIT),  # ready at 2, no beat yet
        (Seen(0.0, True, True, 2.0, None), 6.1, Verdict.SILENT),  # 4.1 s since ready
        (Seen(0.0, True, True, 2.0, 7.0), 10.9, Verdict.WAIT),  # beat at 7
        (Seen(0.0, True, True, 2.0, 7.0), 11.1, Verdict.SILENT),
        (Seen(0.0, False, True, 1.0, None), 999.0, Verdict.WAIT),  # no SDK: never silent
        (Seen(0.0, True, False, None, None), 1.5, Verdict.WAIT),  # expected SDK: no timer
    ],
)
def test_verdicts(seen: Seen, now: float, verdict: Verdict) -> None:
    """Ready after ready_after_s without the SDK; an SDK worker (or one whose bot is known to
    speak it) waits for READY; killed when not READY in time or silent."""
    assert check(LIMITS, seen, now)[0] is verdict


def test_zero_turns_the_limits_off() -> None:
    """ready_timeout_s = 0 and heartbeat_timeout_s = 0 mean no limit."""
    off = Limits(ready_after_s=1.0, ready_timeout_s=0.0, heartbeat_timeout_s=0.0)
    assert check(off, Seen(0.0, True, False, None, None), 1e6)[0] is Verdict.WAIT
    assert check(off, Seen(0.0, True, True, 1.0, 1.0), 1e6)[0] is Verdict.WAIT


def test_kill_reasons_say_how_long() -> None:
    """The reason of a kill goes into the log and the events; it says what was missed."""
    assert check(LIMITS, Seen(0.0, True, False, None, None), 11.0)[1] == "not ready 10s after start"
    assert check(LIMITS, Seen(0.0, True, True, 2.0, 7.0), 12.0)[1] == "no heartbeat for 5.0s"
