"""Which cache keys the fleet reads, and when to refresh them (pure: no I/O, no clock).

HotKeys counts reads per key with exponential decay (a half-life), in a
bounded table: at most 2 x `capacity` keys are held; when it is full the
coldest half is dropped in one pass (amortised O(log n) a read). A million
distinct keys read once each therefore cost no more memory than a few
thousand: only keys read again before they are pruned survive, which is
what a hot key does. Decay is forward decay (Cormode et al. 2009): a read
at time t adds 2^((t - L)/h) to the key's weight for a landmark L, so no
weight is ever touched to age it; all weights are rescaled now and then.

From a key's decayed count c the read rate is c * ln 2 / h (for the first
half-lives the tracker has run, corrected for the time it has had). The
planner warms a key only when

    - it is among the `top_k` hottest keys,
    - it is predicted to be read at least `min_reads` times during the TTL
      a refresh would give it (rate x TTL), so a warm costs the database
      no more than the miss it prevents (at the default of 1),
    - and its expiry is known: a refresh is due `lead` before it
      (seconds, or a fraction of the TTL).

Warms due at once are taken hottest first, within `max_warms_per_s` (a
token bucket); one that could not go is tried again on the next tick until
its key expires. A key is not warmed twice while a warm is in flight.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

_RESCALE_AT = 60.0  # half-lives between rescales (2^60 stays far inside a float)
_MOVED_S = 0.05  # an expiry that moved less than this is the same expiry
_TOP_EVERY_S = 0.5  # the top-k set is recomputed this often


class Entry:
    """One tracked key."""

    __slots__ = (
        "bot",
        "due",
        "expires_at",
        "hits",
        "key",
        "misses",
        "slot",
        "ttl_s",
        "warming_until",
        "weight",
    )

    def __init__(self, key: str, bot: str, slot: int) -> None:
        self.key, self.bot, self.slot = key, bot, slot
        self.weight = 0.0
        self.ttl_s = 0.0
        self.expires_at: float | None = None
        self.due: float | None = None
        self.warming_until = 0.0
        self.hits = self.misses = 0


class HotKeys:
    """Decayed read counts of at most 2 x capacity keys."""

    def __init__(self, capacity: int, half_life_s: float, now: float) -> None:
        if capacity < 1 or half_life_s <= 0:
            raise ValueError("capacity must be >= 1 and half_life_s > 0")
        self.capacity = capacity
        self.half_life_s = half_life_s
        self.entries: dict[str, Entry] = {}
        self.pruned = 0
        self._landmark = now
        self._started = now

    def record(self, key: str, bot: str, slot: int, reads: float, now: float) -> Entry:
        entry = self.entries.get(key)
        if entry is None:
            if len(self.entries) >= 2 * self.capacity:
                self._prune()
            entry = self.entries[key] = Entry(key, bot, slot)
        entry.bot, entry.slot = bot, slot
        entry.weight += reads * self._unit(now)
        return entry

    def count(self, entry: Entry, now: float) -> float:
        """The key's reads, each weighted by half every half-life since it happened."""
        return entry.weight / self._unit(now)

    def rate(self, entry: Entry, now: float) -> float:
        """Reads per second, estimated from the decayed count."""
        h = self.half_life_s
        seen = 1.0 - math.pow(
            2.0, -max(now - self._started, h / 100) / h
        )  # share of a full history
        return self.count(entry, now) * math.log(2) / h / seen

    def hottest(self, n: int, bot: str | None = None) -> list[Entry]:
        entries = self.entries.values()
        if bot is not None:
            entries = [e for e in entries if e.bot == bot]  # type: ignore[assignment]
        return heapq.nlargest(n, entries, key=lambda e: e.weight)

    def _unit(self, now: float) -> float:
        exponent = (now - self._landmark) / self.half_life_s
        if exponent > _RESCALE_AT:
            scale = math.pow(2.0, -exponent)
            for entry in self.entries.values():
                entry.weight *= scale
            self._landmark, exponent = now, 0.0
        return math.pow(2.0, exponent)

    def _prune(self) -> None:
        """Keep the `capacity` heaviest keys."""
        keep = heapq.nlargest(self.capacity, self.entries.values(), key=lambda e: e.weight)
        self.pruned += len(self.entries) - len(keep)
        self.entries = {e.key: e for e in keep}


@dataclass(frozen=True, slots=True)
class Lead:
    """How long before expiry a key is refreshed: seconds, or a fraction of its TTL."""

    seconds: float = 0.0
    fraction: float = 0.0

    def of(self, ttl_s: float) -> float:
        return self.seconds if self.fraction == 0 else self.fraction * ttl_s

    def __str__(self) -> str:
        return f"{self.fraction:.0%}" if self.fraction else f"{self.seconds:g}s"


@dataclass(frozen=True, slots=True)
class Warm:
    """A refresh to ask for now."""

    key: str
    bot: str
    slot: int


class Planner:
    """When to warm which keys; fed with reads and warm results, asked on every tick."""

    def __init__(
        self,
        keys: HotKeys,
        *,
        top_k: int,
        lead: Lead,
        min_reads: float,
        max_warms_per_s: float,
        tick_s: float,
        now: float,
    ) -> None:
        self.keys = keys
        self.top_k = top_k
        self.lead = lead
        self.min_reads = min_reads
        self.max_warms_per_s = max_warms_per_s
        self.tick_s = tick_s
        self.counts = {"planned": 0, "cold": 0, "late": 0, "rate_limited": 0, "lost": 0}
        self._heap: list[tuple[float, str]] = []
        self._top: set[str] = set()
        self._top_at = -math.inf
        self._tokens = self._burst = max(1.0, max_warms_per_s * tick_s * 2)
        self._refilled_at = now

    # ------------------------------------------------------------ what happened

    def read(  # noqa: PLR0917  (one call per report on the hot path)
        self,
        key: str,
        bot: str,
        slot: int,
        hits: int,
        misses: int,
        left_s: float | None,
        ttl_s: float,
        now: float,
    ) -> Entry:
        """Reads of a key by one worker; left_s is the time it had left to live (None: unknown)."""
        entry = self.keys.record(key, bot, slot, hits + misses, now)
        entry.hits += hits
        entry.misses += misses
        if ttl_s > 0:
            entry.ttl_s = ttl_s
        if left_s is not None:
            expires, known = now + left_s, entry.expires_at
            # A refresh only moves an expiry later. A report that says earlier was read before
            # a refresh whose result came first (batches from several workers interleave).
            if known is None or known <= now or expires > known + _MOVED_S:
                self._expires(entry, expires)
            elif entry.due is None and known - self._lead(entry) > now:
                self._expires(entry, known)  # it was cold, or its warm went unanswered: again
        return entry

    def warmed(self, key: str, ok: bool, ttl_s: float, now: float) -> None:
        entry = self.keys.entries.get(key)
        if entry is None:
            return
        entry.warming_until = 0.0
        if ok and ttl_s > 0:
            entry.ttl_s = ttl_s
            self._expires(entry, now + ttl_s)

    def forget_expiries(self) -> None:
        """Redis lost its data (it restarted): nothing we knew about expiries holds."""
        for entry in self.keys.entries.values():
            entry.expires_at = entry.due = None
            entry.warming_until = 0.0
        self._heap.clear()

    def prewarm(self, bot: str, n: int, now: float) -> int:
        """Refresh a bot's n hottest keys soon, unless they have most of their TTL left."""
        queued = 0
        for entry in self.keys.hottest(n, bot):
            fresh = entry.expires_at is not None and entry.expires_at - now > entry.ttl_s / 2
            if not fresh and entry.ttl_s > 0:
                entry.due = now
                heapq.heappush(self._heap, (now, entry.key))
                queued += 1
        return queued

    # ------------------------------------------------------------ what to do

    def plan(self, now: float) -> list[Warm]:
        """The warms to send now, hottest first, within the rate limit."""
        self._refill(now)
        if now - self._top_at >= _TOP_EVERY_S:
            self._top = {e.key for e in self.keys.hottest(self.top_k)}
            self._top_at = now
        candidates: list[Entry] = []
        horizon = now + self.tick_s
        entries = self.keys.entries
        while self._heap and self._heap[0][0] <= horizon:
            due, key = heapq.heappop(self._heap)
            entry = entries.get(key)
            if entry is None or entry.due != due:
                continue  # pruned, or rescheduled since
            entry.due = None
            if entry.warming_until > now:
                continue
            if entry.warming_until:
                entry.warming_until = 0.0
                self.counts["lost"] += 1
            if entry.expires_at is not None and entry.expires_at <= now:
                self.counts["late"] += 1
                continue
            if key not in self._top or self.keys.rate(entry, now) * entry.ttl_s < self.min_reads:
                self.counts["cold"] += 1
                continue
            candidates.append(entry)
        candidates.sort(key=lambda e: e.weight, reverse=True)
        chosen: list[Warm] = []
        for entry in candidates:
            if self._tokens >= 1:
                self._tokens -= 1
                entry.warming_until = now + max(1.0, 2 * self.lead.of(entry.ttl_s))
                chosen.append(Warm(entry.key, entry.bot, entry.slot))
            elif entry.expires_at is None or entry.expires_at > now + self.tick_s:
                entry.due = now + self.tick_s  # next tick, hottest first again
                heapq.heappush(self._heap, (entry.due, entry.key))
            else:
                self.counts["rate_limited"] += 1
        self.counts["planned"] += len(chosen)
        if len(self._heap) > 4 * len(entries) + 1024:
            self._compact()
        return chosen

    def _expires(self, entry: Entry, at: float) -> None:
        entry.expires_at = at
        entry.due = at - self._lead(entry)
        heapq.heappush(self._heap, (entry.due, entry.key))

    def _lead(self, entry: Entry) -> float:
        return max(self.lead.of(entry.ttl_s), self.tick_s)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self._burst, self._tokens + elapsed * self.max_warms_per_s)
        self._refilled_at = now

    def _compact(self) -> None:
        """Drop the heap's stale entries (each reschedule leaves one behind)."""
        entries = self.keys.entries
        self._heap = [
            (due, key)
            for due, key in self._heap
            if (e := entries.get(key)) is not None and e.due == due
        ]
        heapq.heapify(self._heap)
