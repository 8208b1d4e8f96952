"""The autoscaling policy as tables: tolerance, window, cooldown, rate limits, clamping,
missing values, unready workers, several metrics."""

from __future__ import annotations

import dataclasses

import pytest

from supervisor.policy.scaling import (
    Aggregation,
    History,
    MetricSpec,
    Observation,
    Policy,
    RateLimit,
    Source,
    WorkerSample,
    cpu_counts,
    decide,
    read_metric,
)

INFLIGHT = MetricSpec(Source.WORKER, "inflight", target=10, aggregation=Aggregation.SUM)
DEPTH = MetricSpec(Source.WORKER, "queue_depth", target=100, aggregation=Aggregation.MAX)
CPU = MetricSpec(Source.CPU, "cpu", target=50, aggregation=Aggregation.AVG)
LIST = MetricSpec(Source.REDIS_LIST, "jobs", target=20, url="redis://x")
POLICY = Policy(min=1, max=20, metrics=(INFLIGHT,), scale_down_window_s=0)


def workers(
    *values: float | None, name: str = "inflight", ready: bool = True
) -> tuple[WorkerSample, ...]:
    return tuple(
        WorkerSample(ready=ready, ready_for_s=100, values={} if v is None else {name: v})
        for v in values
    )


NO_HISTORY = History()


def run(policy: Policy, obs: Observation, history: History = NO_HISTORY, now: float = 100.0) -> int:
    return decide(policy, obs, history, now).desired


@pytest.mark.parametrize(
    ("values", "desired"),
    [
        ((10, 10), 2),  # on target
        ((10.9, 10.9), 2),  # ratio 1.09: within the 10 % band
        ((11.1, 11.1), 3),  # ratio 1.11: out of it, ceil(22.2 / 10)
        ((9.1, 9.1), 2),  # ratio 0.91: within
        ((8.9, 8.9), 2),  # ratio 0.89: ceil(17.8 / 10) = 2 anyway
        ((2, 2), 1),  # ceil(4 / 10)
        ((40, 40), 8),
        ((0, 0), 1),  # nothing to do: down to min
    ],
)
def test_tolerance_band_and_the_hpa_rule(values: tuple[float, ...], desired: int) -> None:
    """desired = ceil(load / target) outside a +/-10 % band around the current count."""
    assert run(POLICY, Observation(current=2, workers=workers(*values))) == desired


@pytest.mark.parametrize(
    ("spec", "samples", "external", "desired"),
    [
        (INFLIGHT, workers(5, 15, 40), {}, 6),  # sum: 60 / 10
        (dataclasses.replace(INFLIGHT, aggregation=Aggregation.AVG), workers(5, 15, 40), {}, 6),
        (DEPTH, workers(900, 900, 900, name="queue_depth"), {}, 9),  # max: a global depth / 100
        (CPU, workers(90, 90, 90, name="cpu"), {}, 6),  # avg CPU 90 % over 3, target 50 %
        (LIST, workers(0, 0, 0), {"jobs": 200.0}, 10),  # list length / 20
        (LIST, workers(0, 0, 0), {"jobs": None}, 3),  # Redis unreachable: keep
    ],
)
def test_each_kind_of_metric(
    spec: MetricSpec,
    samples: tuple[WorkerSample, ...],
    external: dict[str, float | None],
    desired: int,
) -> None:
    """Sum, average and max of worker metrics, CPU, and a Redis list's length."""
    policy = dataclasses.replace(POLICY, metrics=(spec,))
    assert run(policy, Observation(current=3, workers=samples, external=external)) == desired


@pytest.mark.parametrize(
    ("values", "desired", "note"),
    [
        ((30, 30, None), 6, ""),  # up: the missing one counts as 0 -> load 60, 6
        ((12, 12, None), 3, "missing values hold it"),  # up 1.2 -> with a 0 it is 0.8: hold
        ((2, 2, None), 2, ""),  # down: the missing one counts as the target: 14 -> 2
        ((6, 6, None), 3, ""),  # down 0.6 -> 22 / 30 = 0.73: ceil(2.2) = 3, no change after all
        ((9, 8, None), 3, "missing values hold it"),  # down 0.85 -> 27 / 30 = 0.9: in the band
    ],
)
def test_missing_values(values: tuple[float | None, ...], desired: int, note: str) -> None:
    """A worker without a value counts as zero when scaling up and as the target when scaling
    down; if that turns the direction around or into the band, the count stays."""
    obs = Observation(current=3, workers=workers(*values))
    reading = read_metric(INFLIGHT, POLICY, obs)
    if note:
        assert reading.note == note
    assert run(POLICY, obs) == desired


def test_unready_workers_are_set_aside() -> None:
    """Workers not ready yet are treated like workers without a value."""
    ready = workers(30, 30)
    unready = workers(99, ready=False)
    obs = Observation(current=3, workers=ready + unready)
    assert run(POLICY, obs) == 6  # 60 / 10; the unready worker's 99 does not count


def test_cpu_of_freshly_ready_workers_is_set_aside() -> None:
    """CPU of a worker whose sample window began within cpu_startup_s of its readiness does
    not count (start-up burns CPU); other metrics are unaffected."""
    policy = dataclasses.replace(POLICY, metrics=(CPU,), cpu_startup_s=2)
    samples = (
        WorkerSample(True, 100, {"cpu": 60}, cpu_window_s=1),
        WorkerSample(True, 100, {"cpu": 60}, cpu_window_s=1),
        WorkerSample(True, 2.5, {"cpu": 100}, cpu_window_s=1),  # window from 1.5 s after ready
    )
    assert run(policy, Observation(current=3, workers=samples)) == 3  # up ratio 1.2 -> 0.8 with a 0
    samples = (*samples[:2], WorkerSample(True, 3.5, {"cpu": 100}, cpu_window_s=1))
    assert run(policy, Observation(current=3, workers=samples)) == 5  # 220 / 50


@pytest.mark.parametrize(
    ("worker", "rule", "counts"),
    [
        # (ready, ready_for_s, cpu_window_s), (cpu_startup_s, initial_readiness_delay_s)
        ((False, 0, 1), (2, 0), False),  # not ready: never
        ((True, 0.5, 1), (0, 0), False),  # the window began before readiness (the burst)
        ((True, 1, 1), (0, 0), True),  # the first sample begun at readiness counts at once
        ((True, 2.5, 1), (2, 0), False),  # began 1.5 s after readiness: still in the grace
        ((True, 3, 1), (2, 0), True),  # began 2 s after: counts
        ((True, 600, 1), (2, 0), True),  # an old worker
        ((True, 3, 1), (2, 30), False),  # initial_readiness_delay_s holds it longer
        ((True, 31, 1), (2, 30), True),
    ],
)
def test_cpu_start_up_rule(
    worker: tuple[bool, float, float], rule: tuple[float, float], counts: bool
) -> None:
    """A worker's CPU counts once its sample's window began cpu_startup_s after its readiness
    (and it has been ready for initial_readiness_delay_s); not 30 s after every start."""
    policy = dataclasses.replace(
        POLICY, metrics=(CPU,), cpu_startup_s=rule[0], initial_readiness_delay_s=rule[1]
    )
    ready, ready_for_s, window_s = worker
    sample = WorkerSample(ready, ready_for_s, {"cpu": 90}, cpu_window_s=window_s)
    assert cpu_counts(policy, sample) is counts


def test_several_metrics_the_highest_wins() -> None:
    """With several metrics each recommends, and the highest recommendation wins."""
    policy = dataclasses.replace(POLICY, metrics=(INFLIGHT, LIST))
    obs = Observation(current=2, workers=workers(10, 10), external={"jobs": 160.0})
    decision = decide(policy, obs, History(), 0.0)
    assert [r.recommendation for r in decision.readings] == [None, 8]
    assert decision.desired == 8


@pytest.mark.parametrize(
    ("current", "values", "desired"),
    [
        (2, (500, 500), 20),  # capped at max
        (2, (0, 0), 1),  # floored at min
        (0, (), 1),  # pinned at 0 before, now auto: back to min
        (30, (10,) * 30, 20),  # above max (a pin was released): down to max
    ],
)
def test_clamp_to_min_and_max(current: int, values: tuple[float, ...], desired: int) -> None:
    """The result always lies in [min, max]."""
    assert run(POLICY, Observation(current=current, workers=workers(*values))) == desired


def test_scale_down_waits_for_the_stabilization_window() -> None:
    """Scaling down acts on the highest recommendation within scale_down_window_s."""
    policy = dataclasses.replace(POLICY, scale_down_window_s=30)
    history = History(recommendations=((80.0, 8), (90.0, 5)))
    obs = Observation(current=8, workers=workers(*[2] * 8))  # recommends 2
    d = decide(policy, obs, history, 100.0)
    assert d.desired == 8
    assert "window max 8" in d.reason
    d = decide(policy, obs, history, 111.0)  # the 8 left the window; the 5 is still in it
    assert d.desired == 5
    d = decide(policy, obs, history, 121.0)
    assert d.desired == 2


def test_scale_up_is_not_stabilized_but_cools_down() -> None:
    """Scaling up is immediate, then waits scale_up_cooldown_s before the next step up."""
    policy = dataclasses.replace(POLICY, scale_up_cooldown_s=10, scale_down_window_s=60)
    high = Observation(current=2, workers=workers(50, 50))
    first = decide(policy, high, History(recommendations=((90.0, 1),)), 100.0)
    assert first.desired == 10
    again = dataclasses.replace(high, current=10, workers=workers(*[20] * 10))
    assert decide(policy, again, first.history, 105.0).desired == 10  # cooling down
    assert decide(policy, again, first.history, 110.5).desired == 20


@pytest.mark.parametrize(
    ("limit", "current", "changes", "desired"),
    [
        (RateLimit(workers=4), 2, (), 6),  # +4 workers per period
        (RateLimit(percent=100), 2, (), 4),  # +100 %
        (RateLimit(workers=4, percent=100), 10, (), 20),  # the larger allowance: 10
        (RateLimit(workers=4, period_s=15), 6, ((95.0, 2, 6),), 6),  # already +4 this period
        (RateLimit(workers=4, period_s=15), 6, ((80.0, 2, 6),), 10),  # that period is over
    ],
)
def test_rate_limit_up(
    limit: RateLimit, current: int, changes: tuple[tuple[float, int, int], ...], desired: int
) -> None:
    """Scale-ups are capped per period, relative to the count at the period's start."""
    policy = dataclasses.replace(POLICY, up_limit=limit)
    obs = Observation(current=current, workers=workers(*[100] * current))  # wants 20 x current
    assert run(policy, obs, History(changes=changes), 100.0) == desired


@pytest.mark.parametrize(
    ("limit", "current", "desired"),
    [
        (RateLimit(workers=2), 10, 8),
        (RateLimit(percent=50), 10, 5),
        (RateLimit(), 10, 1),  # no limit
    ],
)
def test_rate_limit_down(limit: RateLimit, current: int, desired: int) -> None:
    """Scale-downs are capped the same way."""
    policy = dataclasses.replace(POLICY, down_limit=limit)
    obs = Observation(current=current, workers=workers(*[0] * current))
    assert run(policy, obs) == desired


def test_no_metrics_keeps_the_count() -> None:
    """With no value from any metric the count stays (and the reason says so)."""
    d = decide(
        POLICY, Observation(current=4, workers=workers(None, None, None, None)), History(), 0.0
    )
    assert d.desired == 4
    assert "inflight: no values" in d.reason


def test_reason_tells_the_whole_story() -> None:
    """The reason names each metric's value and ratio, the steps and the change."""
    policy = dataclasses.replace(POLICY, up_limit=RateLimit(workers=2))
    d = decide(policy, Observation(current=2, workers=workers(30, 30)), History(), 0.0)
    assert d.reason == "inflight 60 (ratio 3.00) -> 6; recommend 6, up limit 2/15s: 4; 2 -> 4"
    assert d.history.changes == ((0.0, 2, 4),)
    assert d.history.last_scale_up_at == 0.0
