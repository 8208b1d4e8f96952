"""The probe state machine: thresholds, startup gating, pure.

Kubernetes' meanings: a probe turns healthy after `success_threshold`
consecutive successes and unhealthy after `failure_threshold` consecutive
failures; a readiness or startup probe starts unhealthy, a liveness probe
starts healthy. Until a startup probe has passed once, the other two do not
run. A liveness or startup probe that reaches its failure threshold asks for
a restart. The caller observes results and the clock; this module decides.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Kind(enum.StrEnum):
    READINESS = "readiness"
    LIVENESS = "liveness"
    STARTUP = "startup"


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When and how often a probe runs, and how many results turn it (k8s defaults)."""

    interval_s: float = 10.0
    timeout_s: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class State:
    """What a probe has seen so far."""

    healthy: bool
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    passed_once: bool = False


def initial(kind: Kind) -> State:
    """Liveness is presumed healthy; readiness and startup must earn it."""
    return State(healthy=kind is Kind.LIVENESS)


def observe(thresholds: Thresholds, state: State, ok: bool) -> State:
    """The state after one more result."""
    if ok:
        successes = state.successes + 1
        healthy = state.healthy or successes >= thresholds.success_threshold
        return replace(
            state, healthy=healthy, successes=successes, failures=0,
            passed_once=state.passed_once or healthy,
        )  # fmt: skip
    failures = state.failures + 1
    healthy = state.healthy and failures < thresholds.failure_threshold
    return replace(state, healthy=healthy, successes=0, failures=failures)


def wants_restart(kind: Kind, thresholds: Thresholds, state: State) -> bool:
    """A liveness probe, or a startup probe that never passed, failed too often."""
    if kind is Kind.READINESS or state.failures < thresholds.failure_threshold:
        return False
    return kind is Kind.LIVENESS or not state.passed_once


def may_run(kind: Kind, startup: State | None) -> bool:
    """Readiness and liveness wait for the startup probe (if any) to pass once."""
    return kind is Kind.STARTUP or startup is None or startup.passed_once


def first_delay_s(thresholds: Thresholds) -> float:
    """How long after the worker starts (or the startup probe passes) the first check runs."""
    return thresholds.initial_delay_s
