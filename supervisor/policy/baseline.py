"""Key figures of a window, and a baseline's compared with now's. Pure.

Per bot: the rate of each counter it reports (its throughput, "rate NAME"), its workers' CPU
(percent of a core, summed) and CPU per unit of work, RSS per worker, restarts per hour,
time to ready, p95 pool wait and cache hit rate; for the fleet, the supervisor's loop lag.

Each figure is a mean with its standard error. Samples a second apart are not independent
(a busy minute is busy in every second of it), so the error is estimated by batch means: the
window's samples are cut into (up to) 10 consecutive batches, and the standard error is the
spread of the batch means over sqrt(batches). A change is *beyond the noise* when the two
means differ by more than twice the combined standard error, sqrt(se_before^2 + se_now^2),
and by more than 5% of the baseline; counts of events (restarts) are taken as Poisson.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from supervisor.policy.analyze import BOT, FLEET, History

BATCHES = 10
SIGMAS = 2.0
MIN_RELATIVE = 0.05


@dataclass(frozen=True, slots=True)
class Figure:
    mean: float
    se: float  # standard error of the mean
    n: int  # samples (or events) behind it

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "se": self.se, "n": self.n}

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> Figure:
        return cls(float(d["mean"]), float(d["se"]), int(d["n"]))


def batch_stats(values: Sequence[float]) -> Figure | None:
    """Mean and batch-means standard error; None without values."""
    n = len(values)
    if n == 0:
        return None
    mean = statistics.fmean(values)
    batches = min(BATCHES, n)
    if batches < 2:
        return Figure(mean, abs(mean), n)  # one sample: as uncertain as it is large
    size = n / batches
    means = [
        statistics.fmean(values[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)])
        for i in range(batches)
    ]
    return Figure(mean, statistics.stdev(means) / math.sqrt(batches), n)


def _by_time(h: History, bot: str, metric: str, how: str) -> list[float]:
    """Per sample time, the sum (or mean) over the bot's workers."""
    at: dict[float, list[float]] = {}
    for w in h.workers(bot):
        for t, v in h.points(bot, w, metric):
            at.setdefault(t, []).append(v)
    ordered = [at[t] for t in sorted(at)]
    return [sum(v) if how == "sum" else statistics.fmean(v) for v in ordered]


def _rates(h: History, bot: str, metric: str) -> list[float]:
    """Per interval, how fast the bot's summed counter grew (per second)."""
    at: dict[float, float] = {}
    for w in h.workers(bot):
        prev: tuple[float, float] | None = None
        for t, v in h.points(bot, w, metric):
            if prev is not None and t > prev[0]:
                grew = v - prev[1] if v >= prev[1] else v  # a restarted worker starts at 0
                at[t] = at.get(t, 0.0) + grew / (t - prev[0])
            prev = (t, v)
    return [at[t] for t in sorted(at)]


def _is_counter(h: History, bot: str, metric: str) -> bool:
    """A reported metric that only grows (between restarts) is a counter: a throughput."""
    ups = downs = 0
    for w in h.workers(bot):
        values = h.get(bot, w, metric)
        for a, b in itertools.pairwise(values):
            ups += b > a
            downs += b < a
    return ups >= 3 and downs <= max(1, ups // 20)


def figures(h: History, bot: str | None = None) -> dict[str, dict[str, Figure]]:
    """{bot: {figure name: Figure}}; "" is the fleet."""
    out: dict[str, dict[str, Figure]] = {}
    span_h = h.covered_s / 3600
    for name in [bot] if bot is not None else h.bots():
        mine: dict[str, Figure | None] = {}
        reported = sorted(
            {k[2] for k in h.series if k[0] == name and k[1] != BOT and k[2].startswith("m.")}
        )
        rates = {m: batch_stats(_rates(h, name, m)) for m in reported if _is_counter(h, name, m)}
        for m, fig in rates.items():
            mine[f"rate {m[2:]}"] = fig
        cpu = batch_stats(_by_time(h, name, "cpu_percent", "sum"))
        mine["cpu_percent"] = cpu
        throughput = next((f for f in rates.values() if f is not None and f.mean > 0), None)
        if cpu is not None and throughput is not None:
            per = cpu.mean * 10 / throughput.mean  # percent of a core -> ms of CPU per unit
            rel = math.hypot(cpu.se / cpu.mean if cpu.mean else 0, throughput.se / throughput.mean)
            mine["cpu_ms_per_unit"] = Figure(per, abs(per) * rel, min(cpu.n, throughput.n))
        mine["rss_mb"] = batch_stats(_by_time(h, name, "rss_mb", "mean"))
        exits = [
            e
            for e in h.window_events("worker_exited")
            if e.get("bot") == name and not e.get("expected")
        ]
        mine["restarts_per_h"] = Figure(
            len(exits) / span_h, math.sqrt(max(len(exits), 1)) / span_h, len(exits)
        )
        ready = [
            float(e["after_s"])
            for e in h.window_events("worker_ready")
            if e.get("bot") == name and isinstance(e.get("after_s"), int | float)
        ]
        mine["ready_s"] = batch_stats(ready)
        mine["db_wait_p95_ms"] = batch_stats(h.get(name, BOT, "db.wait_p95_ms"))
        mine["cache_hit_rate"] = batch_stats(h.get(name, BOT, "cache.hit_rate"))
        out[name] = {k: v for k, v in mine.items() if v is not None}
    lag = batch_stats([v * 1000 for v in h.get(FLEET, BOT, "loop_lag_s")])
    cpu = batch_stats(h.get(FLEET, BOT, "cpu_percent"))
    out[FLEET] = {k: v for k, v in (("loop_lag_ms", lag), ("supervisor_cpu_percent", cpu)) if v}
    return out


@dataclass(frozen=True, slots=True)
class Change:
    bot: str
    figure: str
    before: Figure | None
    now: Figure | None

    @property
    def change(self) -> float | None:
        """Relative change (0.25: 25% more); None when either side is missing or zero."""
        if self.before is None or self.now is None or self.before.mean == 0:
            return None
        return (self.now.mean - self.before.mean) / abs(self.before.mean)

    @property
    def beyond_noise(self) -> bool:
        if self.before is None or self.now is None:
            return False
        diff = abs(self.now.mean - self.before.mean)
        noise = SIGMAS * math.hypot(self.before.se, self.now.se)
        return diff > noise and diff > MIN_RELATIVE * abs(self.before.mean)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bot": self.bot, "figure": self.figure,
            "before": None if self.before is None else self.before.as_dict(),
            "now": None if self.now is None else self.now.as_dict(),
            "change": self.change, "beyond_noise": self.beyond_noise,
        }  # fmt: skip


def compare(
    before: Mapping[str, Mapping[str, Figure]], now: Mapping[str, Mapping[str, Figure]]
) -> list[Change]:
    """Every figure of either side, side by side (bots of the baseline first)."""
    out = []
    for bot in [*before, *(b for b in now if b not in before)]:
        a, b = before.get(bot, {}), now.get(bot, {})
        for name in [*a, *(n for n in b if n not in a)]:
            out.append(Change(bot, name, a.get(name), b.get(name)))
    return out
