"""Bounded time series for the monitor, and the trend of one. Pure.

A `Ring` holds the last N samples in a flat array of doubles (8 bytes each,
whatever the values), so memory stays fixed however long the fleet runs.
"""

from __future__ import annotations

import math
from array import array


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
