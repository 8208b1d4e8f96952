"""The autoscaling policy: metrics in, desired worker count out. Pure.

The Kubernetes HPA rule, inside one host. For each metric the *load* is
the amount of work to spread over the workers, and the recommendation is
the number of workers that puts each at its target:

    recommendation = ceil(load / target)       ratio = load / (target * current)

    metric                      load
    a worker metric, "sum"      the sum over workers          (in-flight jobs)
    a worker metric, "avg"      the average times the workers (like HPA utilization)
    a worker metric, "max"      the largest value             (a queue depth every worker reports)
    "cpu"                       the average CPU % times the workers
    "redis_list"                the list's length             (read by the supervisor)

- Within the tolerance band (|ratio - 1| <= tolerance) the count stays.
- Workers not ready yet are set aside as HPA does; a worker with no
  value counts as the target when scaling down and as zero when scaling up.
  If that turns the direction around, the count stays.
- CPU start-up rule (`cpu_counts`): a worker's CPU counts once the window of
  its CPU sample began at least `cpu_startup_s` after it became ready (HPA's
  "sample taken after readiness", plus a short grace for the burst right
  after it: connecting, warming caches). So a CPU-bound bot scales up a few
  seconds after its workers are ready, and a worker's own start-up burst is
  never read as load. `initial_readiness_delay_s` (0 by default) can hold
  every worker's CPU for longer, for bots with long warm-ups.
- With several metrics the highest recommendation wins.
- The result is clamped to [min, max]. A scale-up waits `scale_up_cooldown_s`
  after the previous one; a scale-down acts on the highest recommendation
  seen within `scale_down_window_s` (stabilization). Rate limits cap the
  change per period, relative to the count at the start of the period, in
  workers or percent (the larger allowance wins, as HPA's default).

Every decision carries its inputs and a one-line reason, so an operator can
see why. Nothing here reads a clock, a socket, a process or psutil.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace


class Source(enum.StrEnum):
    WORKER = "worker"  # a metric the workers report through the SDK
    CPU = "cpu"  # CPU percent per worker, sampled by the supervisor
    REDIS_LIST = "redis_list"  # a Redis list's length, read by the supervisor


class Aggregation(enum.StrEnum):
    SUM = "sum"
    AVG = "avg"
    MAX = "max"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    source: Source
    name: str  # the worker metric's name; "cpu"; or the Redis key
    target: float  # per worker
    aggregation: Aggregation = Aggregation.AVG
    url: str = ""  # redis_list only

    @property
    def label(self) -> str:
        if self.source is Source.REDIS_LIST:
            return f"redis_list {self.name}"
        return self.name


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most max(workers, percent of the count) change per period; None: no limit."""

    workers: int | None = None
    percent: float | None = None
    period_s: float = 15.0

    def allowance(self, base: int) -> int | None:
        options = []
        if self.workers is not None:
            options.append(self.workers)
        if self.percent is not None:
            options.append(math.ceil(base * self.percent / 100))
        return max(options) if options else None


@dataclass(frozen=True, slots=True)
class Policy:
    min: int
    max: int
    metrics: tuple[MetricSpec, ...]
    tolerance: float = 0.1
    interval_s: float = 1.0
    scale_up_cooldown_s: float = 0.0
    scale_down_window_s: float = 30.0
    up_limit: RateLimit = field(default_factory=RateLimit)
    down_limit: RateLimit = field(default_factory=RateLimit)
    initial_readiness_delay_s: float = 0.0
    cpu_startup_s: float = 0.0


@dataclass(frozen=True, slots=True)
class WorkerSample:
    """One live worker, as the supervisor sees it now."""

    ready: bool
    ready_for_s: float = 0.0  # how long it has been ready
    values: Mapping[str, float] = field(default_factory=dict)  # metric name (or "cpu") -> value
    cpu_window_s: float = 0.0  # how long ago the window of its CPU sample began


@dataclass(frozen=True, slots=True)
class Observation:
    current: int  # the desired count now
    workers: tuple[WorkerSample, ...]
    external: Mapping[str, float | None] = field(default_factory=dict)  # redis key -> length


@dataclass(frozen=True, slots=True)
class History:
    recommendations: tuple[tuple[float, int], ...] = ()  # (when, count) within the window
    changes: tuple[tuple[float, int, int], ...] = ()  # (when, from, to) within a period
    last_scale_up_at: float | None = None


@dataclass(frozen=True, slots=True)
class MetricReading:
    label: str
    value: float | None  # the aggregated value
    load: float | None
    ratio: float | None
    recommendation: int | None  # None: no data, or the count stays
    note: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    reason: str
    readings: tuple[MetricReading, ...]
    recommended: int  # the highest recommendation, before window, limits and clamp
    history: History


# ---------------------------------------------------------------- one metric


def read_metric(spec: MetricSpec, policy: Policy, obs: Observation) -> MetricReading:
    """The recommendation of one metric, with HPA's care for missing and unready values."""
    if spec.source is Source.REDIS_LIST:
        return _global_reading(spec, policy, obs.current, obs.external.get(spec.name))
    values = _values(spec, policy, obs)
    if spec.aggregation is Aggregation.MAX:
        present = [v for v in values if v is not None]
        return _global_reading(spec, policy, obs.current, max(present) if present else None)
    counted = [v for v in values if v is not None]
    if not counted:
        return MetricReading(spec.label, None, None, None, None, "no values")
    if spec.aggregation is Aggregation.SUM:
        value = sum(counted)
        load = value
    else:
        value = sum(counted) / len(counted)
        load = value * len(counted)
    ratio = _ratio(load, spec.target, len(counted))
    if abs(ratio - 1) <= policy.tolerance:
        return MetricReading(spec.label, value, load, ratio, None, "within tolerance")
    missing = len(values) - len(counted)
    if missing:
        # HPA: the absent count as the target when going down, as nothing when going up.
        load += missing * spec.target if ratio < 1 else 0.0
        new_ratio = _ratio(load, spec.target, len(values))
        if (new_ratio - 1) * (ratio - 1) <= 0 or abs(new_ratio - 1) <= policy.tolerance:
            return MetricReading(spec.label, value, load, new_ratio, None, "missing values hold it")
        ratio = new_ratio
    return MetricReading(spec.label, value, load, ratio, math.ceil(load / spec.target - 1e-9))


def _values(spec: MetricSpec, policy: Policy, obs: Observation) -> list[float | None]:
    """One entry per worker; None for a worker set aside or without a value."""
    values: list[float | None] = []
    key = "cpu" if spec.source is Source.CPU else spec.name
    for w in obs.workers:
        fresh = spec.source is Source.CPU and not cpu_counts(policy, w)
        values.append(None if not w.ready or fresh else w.values.get(key))
    return values


def cpu_counts(policy: Policy, w: WorkerSample) -> bool:
    """Does this worker's CPU sample count? Only a sample of time after its start-up burst."""
    if not w.ready or w.ready_for_s < policy.initial_readiness_delay_s:
        return False
    window_after_ready_s = w.ready_for_s - w.cpu_window_s  # < 0: it began before readiness
    return window_after_ready_s >= policy.cpu_startup_s


def _global_reading(
    spec: MetricSpec, policy: Policy, current: int, value: float | None
) -> MetricReading:
    if value is None:
        return MetricReading(spec.label, None, None, None, None, "no value")
    ratio = _ratio(value, spec.target, current)
    if abs(ratio - 1) <= policy.tolerance:
        return MetricReading(spec.label, value, value, ratio, None, "within tolerance")
    return MetricReading(spec.label, value, value, ratio, math.ceil(value / spec.target - 1e-9))


def _ratio(load: float, target: float, workers: int) -> float:
    if workers <= 0:
        return math.inf if load > 0 else 1.0
    return load / (target * workers)


# ---------------------------------------------------------------- the decision


def decide(policy: Policy, obs: Observation, history: History, now: float) -> Decision:
    """The desired count, why, and the history to keep for next time."""
    readings = tuple(read_metric(spec, policy, obs) for spec in policy.metrics)
    recs = [r.recommendation for r in readings if r.recommendation is not None]
    recommended = max(recs) if recs else obs.current
    desired = _clamp(policy, recommended)
    steps = [f"recommend {recommended}" if recs else f"keep {obs.current}"]
    if desired != recommended:
        steps.append(f"clamped to [{policy.min}, {policy.max}]: {desired}")
    recent = [(t, n) for t, n in history.recommendations if now - t < policy.scale_down_window_s]
    window = (*recent, (now, desired))
    if desired < obs.current:
        stable = max(n for _, n in window)
        if stable > desired:
            steps.append(f"window max {stable}")
            desired = min(stable, obs.current)
    elif desired > obs.current and _cooling(policy, history, now):
        steps.append(f"cooldown {policy.scale_up_cooldown_s:g}s")
        desired = obs.current
    desired, limited = _limit(policy, history, obs.current, desired, now)
    if limited:
        steps.append(limited)
    desired = _clamp(policy, desired)
    return Decision(
        desired=desired,
        reason=_reason(readings, steps, obs.current, desired),
        readings=readings,
        recommended=recommended,
        history=_remember(policy, history, window, current=obs.current, desired=desired, now=now),
    )


def _clamp(policy: Policy, n: int) -> int:
    return max(policy.min, min(policy.max, n))


def _cooling(policy: Policy, history: History, now: float) -> bool:
    last = history.last_scale_up_at
    return last is not None and now - last < policy.scale_up_cooldown_s


def _limit(
    policy: Policy, history: History, current: int, desired: int, now: float
) -> tuple[int, str]:
    """Cap the change per period, relative to the count at the period's start."""
    going_up = desired > current
    limit = policy.up_limit if going_up else policy.down_limit
    if desired == current:
        return desired, ""
    base = current
    for when, before, _ in history.changes:  # oldest first
        if now - when < limit.period_s:
            base = before
            break
    allowance = limit.allowance(base)
    if allowance is None:
        return desired, ""
    bound = base + allowance if going_up else base - allowance
    capped = min(desired, bound) if going_up else max(desired, bound)
    if capped == desired:
        return desired, ""
    direction = "up" if going_up else "down"
    return capped, f"{direction} limit {allowance}/{limit.period_s:g}s: {capped}"


def _remember(
    policy: Policy,
    history: History,
    window: tuple[tuple[float, int], ...],
    *,
    current: int,
    desired: int,
    now: float,
) -> History:
    longest = max(policy.up_limit.period_s, policy.down_limit.period_s)
    changes = tuple(c for c in history.changes if now - c[0] < longest)
    if desired != current:
        changes += ((now, current, desired),)
    up_at = now if desired > current else history.last_scale_up_at
    return replace(history, recommendations=window, changes=changes, last_scale_up_at=up_at)


def _reason(
    readings: tuple[MetricReading, ...], steps: list[str], current: int, desired: int
) -> str:
    parts = []
    for r in readings:
        if r.value is None:
            parts.append(f"{r.label}: {r.note}")
        else:
            rec = r.note if r.recommendation is None else f"-> {r.recommendation}"
            parts.append(f"{r.label} {r.value:g} (ratio {r.ratio:.2f}) {rec}")
    return "; ".join(parts) + f"; {', '.join(steps)}; {current} -> {desired}"
