"""What the monitor's HTTP and Prometheus parts see of it: its series, scaling timeline, alerts.

`Series` holds one process's samples. `MonitorView` is the narrow face of the `Monitor` that
`web.py` and `prom.py` read, so they never import the plugin (which starts them).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Protocol

from supervisor.plugins.monitor import procstat
from supervisor.plugins.monitor.series import Ring, RollingFit

SAMPLED = ("cpu_percent", "rss_mb", "threads", "fds", "ctx_switches_per_s", "rss_growth_mb_per_h")
MAX_REPORTED_SERIES = 16  # worker-reported metrics kept as series, per worker


class MonitorView(Protocol):
    """The monitor as its endpoints read it."""

    @property
    def series(self) -> dict[int, Series]: ...  # by pid

    @property
    def scaling(self) -> deque[dict[str, Any]]: ...

    @property
    def scaling_counts(self) -> dict[str, int]: ...

    def firing(self, now: float) -> list[dict[str, Any]]: ...


class Series:
    """One process's samples: rings of equal length, with their times."""

    def __init__(self, bot: str, slot: int, pid: int, size: int) -> None:
        self.bot, self.slot, self.pid = bot, slot, pid
        self.times = Ring(size)
        self.rings = {name: Ring(size) for name in SAMPLED}
        self.reported: dict[str, Ring] = {}
        self._size = size
        self._last: tuple[float, procstat.ProcSample] | None = None
        self._fit: RollingFit | None = None

    def add(
        self, now: float, s: procstat.ProcSample, reported: dict[str, float], trend_s: float
    ) -> None:
        cpu = ctx = 0.0
        if self._last is not None:
            then, prev = self._last
            dt = max(now - then, 1e-6)
            cpu, ctx = 100 * (s.cpu_s - prev.cpu_s) / dt, (s.ctx_switches - prev.ctx_switches) / dt
        self._last = (now, s)
        self.times.append(now)
        values = {"cpu_percent": cpu, "rss_mb": s.rss_bytes / 2**20, "threads": s.threads}
        values |= {"fds": s.fds, "ctx_switches_per_s": ctx}
        for name, value in values.items():
            self.rings[name].append(value)
        if self._fit is None:
            self._fit = RollingFit(trend_s)
        self._fit.add(now, values["rss_mb"])
        growth = self._fit.slope_per_hour(min_span_s=min(10.0, trend_s / 2))
        self.rings["rss_growth_mb_per_h"].append(math.nan if growth is None else growth)
        for name, value in reported.items():
            ring = self.reported.get(name)
            if ring is None and len(self.reported) < MAX_REPORTED_SERIES:
                ring = self.reported[name] = Ring(self._size)
            if ring is not None:
                ring.append(value)

    @property
    def last_sample(self) -> procstat.ProcSample | None:
        return self._last[1] if self._last is not None else None

    def latest(self, metric: str) -> float | None:
        ring = self.rings.get(metric) or self.reported.get(metric)
        value = ring.last() if ring is not None else None
        return None if value is None or math.isnan(value) else value  # NaN: no value

    def tail(self, points: int) -> dict[str, list[float | None]]:
        out: dict[str, list[float | None]] = {"t": list(self.times.values()[-points:])}
        for name, ring in (*self.rings.items(), *self.reported.items()):
            out[name] = [None if math.isnan(v) else round(v, 3) for v in ring.values()[-points:]]
        return out
