"""The `[bots.NAME.scale]` table, read into a `scaling.Policy`.

[bots.queue_worker.scale]
min = 1
max = 10
metric = "queue_depth"        # one metric: a worker metric's name, "cpu" or "redis_list"
aggregation = "max"           # worker metrics: sum | avg | max (default avg)
target = 100                  # per worker
# or several: metrics = [{ metric = "cpu", target = 70 }, { metric = "redis_list",
#                          key = "jobs", url = "redis://127.0.0.1:6379/0", target = 50 }]
tolerance = 0.1
interval_s = "1s"
scale_up_cooldown_s = "0s"
scale_down_window_s = "30s"
up_limit = { workers = 4, percent = 100, period_s = "15s" }
down_limit = { percent = 100, period_s = "15s" }
cpu_startup_s = "2s"            # CPU counts from samples begun this long after readiness
initial_readiness_delay_s = "0s"  # hold every worker's CPU this long after readiness
"""

from __future__ import annotations

from typing import Any

from supervisor.config.fields import (
    BadValue,
    Table,
    duration,
    enum_choice,
    integer,
    number,
    positive,
    string,
)
from supervisor.policy.scaling import Aggregation, MetricSpec, Policy, RateLimit, Source

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# HPA's defaults, but a 30 s scale-down window instead of 300 s: bots react faster than pods.
_UP_LIMIT = RateLimit(workers=4, percent=100, period_s=15.0)
_DOWN_LIMIT = RateLimit(percent=100, period_s=15.0)
# A worker's CPU counts from a sample begun this long after it was ready: past the burst of
# connecting and warming up, without HPA's 30 s of ignoring every new worker.
CPU_STARTUP_S = 2.0


def parse_scale(table: Table) -> Policy | None:
    """The policy, or None (and problems recorded) if the table is wrong."""
    start = len(table.problems)
    minimum = table.take("min", integer(minimum=0), 1)
    maximum = table.take("max", integer(minimum=1), max(minimum, 1))
    if maximum < minimum:
        table.problems.append(f"{table.key_path('max')}: {maximum} is below min ({minimum})")
    metrics = _metrics(table)
    policy = Policy(
        min=minimum,
        max=maximum,
        metrics=metrics,
        tolerance=table.take("tolerance", number(0.0, 1.0), 0.1),
        interval_s=table.take("interval_s", duration, 1.0),
        scale_up_cooldown_s=table.take("scale_up_cooldown_s", duration, 0.0),
        scale_down_window_s=table.take("scale_down_window_s", duration, 30.0),
        up_limit=_limit(table.sub("up_limit"), _UP_LIMIT) if table.has("up_limit") else _UP_LIMIT,
        down_limit=(
            _limit(table.sub("down_limit"), _DOWN_LIMIT) if table.has("down_limit") else _DOWN_LIMIT
        ),
        initial_readiness_delay_s=table.take("initial_readiness_delay_s", duration, 0.0),
        cpu_startup_s=table.take("cpu_startup_s", duration, CPU_STARTUP_S),
    )
    table.finish()
    if policy.interval_s <= 0:
        table.problems.append(f"{table.key_path('interval_s')}: must be more than 0")
    return policy if len(table.problems) == start else None


def _metrics(table: Table) -> tuple[MetricSpec, ...]:
    """`metric` and its keys in the table itself, or a `metrics` list of tables."""
    if table.has("metrics"):
        none: list[dict[str, Any]] = []
        raw = table.take("metrics", _table_list, none)
        items = [
            Table(item, f"{table.key_path('metrics')}[{i}]", table.problems)
            for i, item in enumerate(raw)
        ]
        specs = [_metric(item) for item in items]
        for item in items:
            item.finish()
        if not raw:
            table.problems.append(f"{table.key_path('metrics')}: give at least one metric")
        return tuple(s for s in specs if s is not None)
    if not table.has("metric"):
        table.problems.append(f'{table.path}: needs "metric" and "target", or "metrics"')
        return ()
    spec = _metric(table)
    return (spec,) if spec is not None else ()


def _metric(table: Table) -> MetricSpec | None:
    name = table.take("metric", string, "")
    target = table.take("target", positive, 0.0)
    if not table.has("target"):
        table.problems.append(f'{table.path}: needs "target" (per worker)')
    if name == Source.REDIS_LIST:
        key = table.take("key", string, "")
        if not table.has("key"):
            table.problems.append(f'{table.path}: a redis_list metric needs "key"')
        url = table.take("url", string, DEFAULT_REDIS_URL)
        return MetricSpec(Source.REDIS_LIST, key, target, url=url) if key and target else None
    if name == Source.CPU:
        return MetricSpec(Source.CPU, "cpu", target, Aggregation.AVG) if target else None
    aggregation = table.take("aggregation", enum_choice(Aggregation), Aggregation.AVG)
    return MetricSpec(Source.WORKER, name, target, aggregation) if name and target else None


def _limit(table: Table, default: RateLimit) -> RateLimit:
    return RateLimit(
        workers=table.take("workers", integer(minimum=1), None),
        percent=table.take("percent", positive, None),
        period_s=table.take("period_s", duration, default.period_s),
    )


def _table_list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadValue('expected a list of tables, e.g. [{ metric = "cpu", target = 70 }]')
    return value
