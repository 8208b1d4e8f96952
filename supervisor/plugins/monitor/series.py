"""Bounded time series for the monitor, and the trend of one. Pure.

A `Ring` holds the last N samples in a flat array of doubles (8 bytes each,
whatever the values), so memory stays fixed however long the fleet runs.
"""

from __future__ import annotations

import math
from array import array
from collections import deque


class Ring:
    """The last `size` values, oldest first when read."""

    __slots__ = ("_count", "_head", "_values")

    def __init__(self, size: int) -> None:
        self._values = array("d", [math.nan]) * size
        self._head = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, value: float) -> None:
        self._values[self._head] = value
        self._head = (self._head + 1) % len(self._values)
        self._count = min(self._count + 1, len(self._values))

    def last(self) -> float | None:
        return self._values[self._head - 1] if self._count else None

    def values(self) -> list[float]:
        if self._count < len(self._values):
            return self._values[: self._count].tolist()
        return (self._values[self._head :] + self._values[: self._head]).tolist()


def slope_per_hour(
    times: list[float], values: list[float], min_span_s: float = 10.0
) -> float | None:
    """Least-squares slope of values over times (seconds), per hour; None with too little data.

    Used for memory growth: a worker whose RSS climbs steadily is leaking.
    """
    pairs = [(t, v) for t, v in zip(times, values, strict=True) if not math.isnan(v)]
    if len(pairs) < 3 or pairs[-1][0] - pairs[0][0] < min_span_s:
        return None
    n = len(pairs)
    mean_t = sum(t for t, _ in pairs) / n
    mean_v = sum(v for _, v in pairs) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in pairs)
    if var_t == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in pairs)
    return cov / var_t * 3600.0


class RollingFit:
    """The least-squares slope of the last `window_s` of (time, value) points, kept up to
    date in O(1) per point with running sums (the monitor fits every worker every second).
    """

    __slots__ = ("_origin", "_points", "_st", "_stt", "_stv", "_sv", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, float]] = deque()
        self._origin: float | None = None  # times are kept relative to it: small sums
        self._st = self._sv = self._stt = self._stv = 0.0

    def add(self, t: float, v: float) -> None:
        if self._origin is None:
            self._origin = t
        t -= self._origin
        self._points.append((t, v))
        self._change(t, v, 1.0)
        while self._points and t - self._points[0][0] > self.window_s:
            self._change(*self._points.popleft(), -1.0)

    def _change(self, t: float, v: float, sign: float) -> None:
        self._st += sign * t
        self._sv += sign * v
        self._stt += sign * t * t
        self._stv += sign * t * v

    def slope_per_hour(self, min_span_s: float = 10.0) -> float | None:
        n = len(self._points)
        if n < 3 or self._points[-1][0] - self._points[0][0] < min_span_s:
            return None
        denominator = n * self._stt - self._st * self._st
        if denominator <= 0:
            return None
        return (n * self._stv - self._st * self._sv) / denominator * 3600.0
