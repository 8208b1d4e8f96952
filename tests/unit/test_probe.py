"""The probe state machine: thresholds, startup gating, success after failure (tables)."""

from __future__ import annotations

import pytest

from supervisor.policy.probe import (
    Kind,
    State,
    Thresholds,
    initial,
    may_run,
    observe,
    wants_restart,
)

T = Thresholds(failure_threshold=3, success_threshold=2)


def run(kind: Kind, results: str, thresholds: Thresholds = T) -> State:
    """Feed a string of results ('+' success, '-' failure) to a fresh probe."""
    state = initial(kind)
    for r in results:
        state = observe(thresholds, state, r == "+")
    return state


@pytest.mark.parametrize(
    ("kind", "results", "healthy", "restart"),
    [
        (Kind.READINESS, "", False, False),  # readiness starts not ready
        (Kind.READINESS, "+", False, False),  # one of two successes
        (Kind.READINESS, "++", True, False),
        (Kind.READINESS, "++--", True, False),  # two failures of three: still ready
        (Kind.READINESS, "++---", False, False),  # readiness never restarts
        (Kind.READINESS, "++---+", False, False),  # one success after failure is not enough
        (Kind.READINESS, "++---++", True, False),  # success after failure, threshold met
        (Kind.READINESS, "+-+", False, False),  # successes must be consecutive
        (Kind.LIVENESS, "", True, False),  # liveness is presumed healthy
        (Kind.LIVENESS, "--", True, False),
        (Kind.LIVENESS, "---", False, True),
        (Kind.LIVENESS, "--+--", True, False),  # failures must be consecutive
        (Kind.STARTUP, "---", False, True),  # never started: restart
        (Kind.STARTUP, "-+", True, False),
    ],
)
def test_thresholds(kind: Kind, results: str, healthy: bool, restart: bool) -> None:
    """Consecutive results turn a probe healthy or unhealthy at its thresholds."""
    th = T if kind is Kind.READINESS else Thresholds(failure_threshold=3)
    state = run(kind, results, th)
    assert state.healthy is healthy
    assert wants_restart(kind, th, state) is restart


@pytest.mark.parametrize(
    ("kind", "startup", "runs"),
    [
        (Kind.LIVENESS, None, True),  # no startup probe: nothing to wait for
        (Kind.LIVENESS, "", False),
        (Kind.READINESS, "--", False),
        (Kind.READINESS, "-+", True),
        (Kind.LIVENESS, "+---", True),  # once passed, the startup probe no longer gates
        (Kind.STARTUP, "", True),
    ],
)
def test_startup_gates_the_others(kind: Kind, startup: str | None, runs: bool) -> None:
    """Readiness and liveness run only once the startup probe has passed once."""
    state = None if startup is None else run(Kind.STARTUP, startup, Thresholds())
    assert may_run(kind, state) is runs
