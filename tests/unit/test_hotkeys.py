"""The hot-key tracker and the refresh planner: choices, memory bound, decay, schedule."""

from __future__ import annotations

import math
import random
import sys

import pytest

from supervisor.plugins.cache_warmer.hotkeys import HotKeys, Lead, Planner

HALF_LIFE = 10.0


def planner(
    *,
    top_k: int = 10,
    lead: Lead = Lead(fraction=0.1),  # noqa: B008  (frozen)
    min_reads: float = 1.0,
    max_warms_per_s: float = 1000.0,
    now: float = 0.0,
) -> Planner:
    keys = HotKeys(top_k * 4, HALF_LIFE, now)
    return Planner(
        keys,
        top_k=top_k,
        lead=lead,
        min_reads=min_reads,
        max_warms_per_s=max_warms_per_s,
        tick_s=0.025,
        now=now,
    )


# ---------------------------------------------------------------- the tracker


def test_a_million_distinct_keys_stay_within_the_bound_and_the_hot_ones_survive() -> None:
    """A million keys read once each, and among them 100 keys each read once every 500 reads
    (above 1/capacity, the share any bounded counter can promise to see): memory stays at
    2 x capacity entries, and the 100 are exactly the hottest."""
    keys = HotKeys(capacity=1000, half_life_s=60.0, now=0.0)
    biggest = 0
    for i in range(1_000_000):
        now = i / 100_000  # ten seconds of reads
        keys.record(f"cold:{i}", "bot", 0, 1, now)
        if i % 5 == 0:
            keys.record(f"hot:{i // 5 % 100}", "bot", 0, 1, now)
        biggest = max(biggest, len(keys.entries))
    assert biggest <= 2 * keys.capacity
    assert keys.pruned >= 1_000_000 - 2 * keys.capacity
    assert {e.key for e in keys.hottest(100)} == {f"hot:{i}" for i in range(100)}
    entry_bytes = sum(sys.getsizeof(e) for e in keys.entries.values())
    assert entry_bytes < 2 * keys.capacity * 200  # a few hundred KiB however many keys came


def test_counts_halve_every_half_life() -> None:
    keys = HotKeys(capacity=10, half_life_s=HALF_LIFE, now=0.0)
    entry = keys.record("k", "bot", 0, 100, now=0.0)
    assert keys.count(entry, 0.0) == pytest.approx(100)
    assert keys.count(entry, HALF_LIFE) == pytest.approx(50)
    assert keys.count(entry, 3 * HALF_LIFE) == pytest.approx(12.5)


def test_weights_are_rescaled_without_changing_counts() -> None:
    """Forward decay grows weights as 2^(t/h); they are rescaled before a float overflows."""
    keys = HotKeys(capacity=10, half_life_s=1.0, now=0.0)
    a = keys.record("a", "bot", 0, 8, now=0.0)
    b = keys.record("b", "bot", 0, 1, now=500.0)  # 500 half-lives later: a rescale
    assert keys.count(a, 500.0) == pytest.approx(8 * 2.0**-500, rel=1e-6, abs=1e-300)
    assert keys.count(b, 500.0) == pytest.approx(1)
    assert math.isfinite(b.weight)
    assert b.weight < 2.0**61


def test_the_rate_estimate_follows_a_steady_reader_from_the_start() -> None:
    """A key read 20 times a second is estimated at about 20/s after one second (the young
    tracker corrects for the history it has not had) and after many half-lives."""
    keys = HotKeys(capacity=10, half_life_s=HALF_LIFE, now=0.0)
    entry = None
    for i in range(1, 20 * 100 + 1):  # 100 s
        entry = keys.record("k", "bot", 0, 1, now=i / 20)
        if i == 20:
            assert keys.rate(entry, 1.0) == pytest.approx(20, rel=0.1)
    assert entry is not None
    assert keys.rate(entry, 100.0) == pytest.approx(20, rel=0.1)


def test_a_new_hot_key_overtakes_one_that_went_quiet() -> None:
    keys = HotKeys(capacity=10, half_life_s=HALF_LIFE, now=0.0)
    keys.record("old", "bot", 0, 1000, now=0.0)
    for t in range(60):
        keys.record("new", "bot", 0, 10, now=float(t))
    assert [e.key for e in keys.hottest(2)] == ["new", "old"]


def test_hottest_per_bot() -> None:
    keys = HotKeys(capacity=10, half_life_s=HALF_LIFE, now=0.0)
    for key, bot, reads in [("a1", "a", 5), ("a2", "a", 9), ("b1", "b", 50), ("a3", "a", 1)]:
        keys.record(key, bot, 0, reads, now=0.0)
    assert [e.key for e in keys.hottest(2, "a")] == ["a2", "a1"]


# ---------------------------------------------------------------- the schedule


TICK = 0.025


def _warm_times(p: Planner, key: str, start: float, end: float) -> list[float]:
    """When the key is warmed, ticking every 25 ms (a warm goes out on the tick before it is
    due, never after)."""
    times = []
    for n in range(round((end - start) / TICK) + 1):
        t = start + n * TICK
        if any(w.key == key for w in p.plan(t)):
            times.append(t)
    return times


def _at(times: list[float], expected: list[float]) -> bool:
    return len(times) == len(expected) and all(
        due - TICK - 1e-9 <= t <= due + 1e-9 for t, due in zip(times, expected, strict=True)
    )


@pytest.mark.parametrize(
    ("case", "lead", "reads_per_s", "ttl_s", "left_s", "warmed_at"),
    [
        # A hot key is refreshed `lead` before it expires: 10 % of a 4 s TTL is 0.4 s.
        ("fraction of the TTL", Lead(fraction=0.1), 50, 4.0, 3.0, [2.6]),
        ("seconds", Lead(seconds=1.0), 50, 4.0, 3.0, [2.0]),
        # The lead never undercuts one tick (a warm would always come too late).
        ("lead under a tick", Lead(seconds=0.001), 50, 4.0, 3.0, [2.975]),
        # Overdue but alive when first seen: at once.
        ("seen late", Lead(fraction=0.5), 50, 4.0, 1.0, [0.0]),
        # 0.2 reads/s x 4 s = 0.8 predicted reads < min_reads 1: a warm would not pay.
        ("cold", Lead(fraction=0.1), 0.2, 4.0, 3.0, []),
        # 0.5 reads/s x 4 s = 2: worth it.
        ("lukewarm", Lead(fraction=0.1), 0.5, 4.0, 3.0, [2.6]),
    ],
)
def test_refresh_schedule(  # noqa: PLR0917  (a table row)
    case: str,
    lead: Lead,
    reads_per_s: float,
    ttl_s: float,
    left_s: float,
    warmed_at: list[float],
) -> None:
    p = planner(lead=lead, now=-20.0)
    # Twenty seconds of reads at the given rate, then one report with the time left to live.
    for i in range(int(20 * reads_per_s)):
        p.keys.record("k", "bot", 0, 1, now=-20 + i / reads_per_s)
    p.read("k", "bot", 3, hits=1, misses=0, left_s=left_s, ttl_s=ttl_s, now=0.0)
    assert _at(_warm_times(p, "k", 0.0, 4.0), warmed_at), case


def test_a_warm_that_was_done_schedules_the_next_one_a_ttl_later() -> None:
    p = planner(lead=Lead(seconds=0.5))
    p.read("k", "bot", 2, hits=50, misses=1, left_s=2.0, ttl_s=2.0, now=0.0)
    assert [w.slot for w in p.plan(1.5)] == [2]  # the worker that read it, with its loader
    assert p.plan(1.525) == []  # in flight: not twice
    p.warmed("k", ok=True, ttl_s=2.0, now=1.6)
    p.read("k", "bot", 2, hits=20, misses=0, left_s=1.9, ttl_s=2.0, now=1.7)
    assert _at(_warm_times(p, "k", 1.7, 3.5), [3.1])


def test_a_warm_never_answered_is_counted_lost_and_planned_again() -> None:
    p = planner(lead=Lead(seconds=1.0))
    p.read("k", "bot", 0, hits=50, misses=1, left_s=5.0, ttl_s=5.0, now=0.0)
    assert len(p.plan(4.0)) == 1
    # The worker died with the request; the key was refreshed by a miss elsewhere.
    p.read("k", "bot", 1, hits=0, misses=1, left_s=5.0, ttl_s=5.0, now=5.5)
    assert [w.slot for w in p.plan(9.5)] == [1]
    assert p.counts["lost"] == 1


def test_only_the_top_k_are_warmed() -> None:
    p = planner(top_k=2, min_reads=0.0)
    for i, reads in enumerate([100, 50, 10]):
        p.read(f"k{i}", "bot", 0, hits=reads, misses=1, left_s=1.0, ttl_s=1.0, now=0.0)
    assert sorted(w.key for w in p.plan(0.95)) == ["k0", "k1"]
    assert p.counts["cold"] == 1


def test_the_rate_limit_takes_the_hottest_first_and_carries_the_rest() -> None:
    """Five keys due together under 40 warms/s (2 a tick at most): hottest first, the rest on
    the next ticks while they are still alive; one that expires first is given up."""
    p = planner(max_warms_per_s=40)
    for i, reads in enumerate([10, 50, 30, 40, 20]):
        p.read(f"k{i}", "bot", 0, hits=reads, misses=1, left_s=1.0, ttl_s=1.0, now=0.0)
    p.read("brief", "bot", 0, hits=5, misses=1, left_s=0.91, ttl_s=1.0, now=0.0)
    order = []
    t = 0.9
    while t < 1.1:
        order.append([w.key for w in p.plan(t)])
        t += 0.025
    flat = [k for tick in order for k in tick]
    assert flat[:5] == ["k1", "k3", "k2", "k4", "k0"]
    assert max(len(tick) for tick in order) <= 2
    assert "brief" not in flat
    assert p.counts["rate_limited"] + p.counts["late"] >= 1


def test_prewarm_queues_a_bots_hottest_keys_unless_they_are_fresh() -> None:
    p = planner()
    p.read("fresh", "a", 0, hits=90, misses=1, left_s=9.0, ttl_s=10.0, now=0.0)
    p.read("stale", "a", 0, hits=80, misses=1, left_s=2.0, ttl_s=10.0, now=0.0)
    p.read("other", "b", 0, hits=99, misses=1, left_s=2.0, ttl_s=10.0, now=0.0)
    assert p.prewarm("a", 10, now=0.1) == 1
    assert [w.key for w in p.plan(0.1)] == ["stale"]


def test_forgetting_expiries_after_a_redis_restart() -> None:
    p = planner()
    p.read("k", "bot", 0, hits=90, misses=1, left_s=5.0, ttl_s=5.0, now=0.0)
    p.forget_expiries()
    assert p.keys.entries["k"].expires_at is None
    assert _warm_times(p, "k", 0.0, 6.0) == []
    # The next miss tells the new expiry.
    p.read("k", "bot", 0, hits=0, misses=1, left_s=5.0, ttl_s=5.0, now=6.0)
    assert _at(_warm_times(p, "k", 6.0, 11.0), [10.5])


def test_the_planner_chooses_the_most_read_keys_of_a_zipf_stream() -> None:
    """Zipf reads over 5,000 keys: the keys it warms are exactly the most read ones."""
    rng = random.Random(7)
    weights = [1 / r for r in range(1, 5001)]
    p = planner(top_k=50, min_reads=0.0)
    ranks = rng.choices(range(1, 5001), weights=weights, k=200_000)
    for i, rank in enumerate(ranks):
        p.read(f"k{rank}", "bot", 0, hits=1, misses=0, left_s=None, ttl_s=1.0, now=i / 10_000)
    chosen = {e.key for e in p.keys.hottest(50)}
    assert len(chosen & {f"k{r}" for r in range(1, 51)}) >= 45


def test_a_report_read_before_a_warm_landed_does_not_warm_again() -> None:
    """Worker A's reads (of the old value) reach the supervisor after worker B's warm result:
    the expiry only moves later, so the key is not warmed a second time."""
    p = planner(lead=Lead(seconds=0.5))
    p.read("k", "bot", 0, hits=50, misses=1, left_s=2.0, ttl_s=2.0, now=0.0)
    assert len(p.plan(1.5)) == 1
    p.warmed("k", ok=True, ttl_s=2.0, now=1.52)
    p.read("k", "bot", 1, hits=5, misses=0, left_s=0.45, ttl_s=2.0, now=1.55)  # stale
    assert _warm_times(p, "k", 1.55, 2.9) == []
    assert _at(_warm_times(p, "k", 3.0, 3.6), [3.02])
