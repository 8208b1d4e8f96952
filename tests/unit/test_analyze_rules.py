"""The analyzer's rules, table by table: synthetic histories in, findings out.

Each rule has cases that must find something (with the right bot, severity and config key) and
cases that must not ("no finding"), so none of them passes by reporting always or never.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest

from supervisor.policy import analyze
from supervisor.policy.analyze import BOT, FLEET, BotFacts, Facts, History, Severity

T0 = 1_000_000.0
N = 120  # two minutes at 1 Hz


def series(f: Callable[[int], float], n: int = N, step: float = 1.0) -> list[tuple[float, float]]:
    return [(T0 + i * step, f(i)) for i in range(n)]


def const(v: float, n: int = N) -> list[tuple[float, float]]:
    return series(lambda _: v, n)


def hist(
    s: dict[tuple[str, int, str], list[tuple[float, float]]],
    events: list[dict[str, Any]] | None = None,
    facts: Facts | None = None,
    start: float = T0,
) -> History:
    return History(start, T0 + N, s, events or [], facts or Facts())


def ev(name: str, t: float, bot: str = "b", worker: int = 0, **fields: Any) -> dict[str, Any]:
    return {"event": name, "ts": T0 + t, "bot": bot, "worker": worker, **fields}


def scaled(bot: str, path: list[int]) -> list[dict[str, Any]]:
    return [
        ev("bot_scaled", i * 5.0, bot, BOT, previous=a, desired=b)
        for i, (a, b) in enumerate(itertools.pairwise(path))
    ]


AUTO = Facts(bots={"b": BotFacts(workers=2, scale_min=1, scale_max=4, scale_down_window_s=30)})

CASES: list[tuple[str, Callable[[History], list[analyze.Finding]], History, list[tuple[str, str, str]]]] = [
    # ---- pinned at max
    ("pinned, load 3x target", analyze.pinned_at_max, hist({
        ("b", BOT, "desired"): const(4), ("b", BOT, "scale.max"): const(4),
        ("b", BOT, "scale.cpu.ratio"): const(3.0)}, facts=AUTO),
     [("pinned_at_max", "b", "critical")]),
    ("pinned, load 1.5x target", analyze.pinned_at_max, hist({
        ("b", BOT, "desired"): const(4), ("b", BOT, "scale.max"): const(4),
        ("b", BOT, "scale.cpu.ratio"): const(1.5)}, facts=AUTO),
     [("pinned_at_max", "b", "warning")]),
    ("at max but load within tolerance", analyze.pinned_at_max, hist({
        ("b", BOT, "desired"): const(4), ("b", BOT, "scale.max"): const(4),
        ("b", BOT, "scale.cpu.ratio"): const(1.05)}, facts=AUTO), []),
    ("overloaded but below max most of the time", analyze.pinned_at_max, hist({
        ("b", BOT, "desired"): series(lambda i: 4 if i > 100 else 2),
        ("b", BOT, "scale.max"): const(4), ("b", BOT, "scale.cpu.ratio"): const(3.0)}, facts=AUTO), []),
    ("not autoscaled", analyze.pinned_at_max, hist({("b", BOT, "desired"): const(4)}), []),
    # ---- flapping
    ("up down up down up", analyze.flapping, hist({}, scaled("b", [1, 3, 1, 3, 1, 3]), AUTO),
     [("flapping", "b", "warning")]),
    ("steady climb", analyze.flapping, hist({}, scaled("b", [1, 2, 3, 4, 5, 6]), AUTO), []),
    ("one dip", analyze.flapping, hist({}, scaled("b", [1, 3, 2, 3]), AUTO), []),
    # ---- CPU
    ("a core each", analyze.cpu_saturated, hist({
        ("b", 0, "cpu_percent"): const(99), ("b", 1, "cpu_percent"): const(20)}, facts=AUTO),
     [("cpu_saturated", "b", "warning")]),
    ("busy in bursts only", analyze.cpu_saturated, hist({
        ("b", 0, "cpu_percent"): series(lambda i: 100 if i % 3 == 0 else 10)}), []),
    ("idle", analyze.cpu_saturated, hist({("b", 0, "cpu_percent"): const(5)}), []),
    # ---- the supervisor
    ("loop lag 300 ms", analyze.supervisor_load, hist({
        (FLEET, BOT, "loop_lag_s"): const(0.3), (FLEET, BOT, "cpu_percent"): const(60),
        (FLEET, BOT, "ipc.messages"): series(lambda i: i * 5000.0),
        ("b", 0, "messages"): series(lambda i: i * 5000.0), ("b", 0, "cpu_percent"): const(1)}),
     [("supervisor_load", "", "critical")]),
    ("supervisor CPU only", analyze.supervisor_load, hist({
        (FLEET, BOT, "loop_lag_s"): const(0.001), (FLEET, BOT, "cpu_percent"): const(70)}),
     [("supervisor_load", "", "warning")]),
    ("supervisor fine", analyze.supervisor_load, hist({
        (FLEET, BOT, "loop_lag_s"): const(0.002), (FLEET, BOT, "cpu_percent"): const(4)}), []),
    # ---- memory growth
    ("steady leak, no limit", analyze.memory_growth, hist({
        ("b", 0, "rss_mb"): series(lambda i: 50 + i * 0.1)}),  # 360 MB/h
     [("memory_growth", "b", "warning")]),
    ("steady leak, limit in minutes", analyze.memory_growth, hist({
        ("b", 0, "rss_mb"): series(lambda i: 50 + i * 0.1)},
        facts=Facts(bots={"b": BotFacts(max_memory_mb=100)})),
     [("memory_growth", "b", "critical")]),
    ("flat with noise", analyze.memory_growth, hist({
        ("b", 0, "rss_mb"): series(lambda i: 50 + 3 * math.sin(i))}), []),
    ("slow growth below threshold", analyze.memory_growth, hist({
        ("b", 0, "rss_mb"): series(lambda i: 50 + i * 0.001)}), []),
    ("sawtooth of restarts is not one leak", analyze.memory_growth, hist(
        {("b", 0, "rss_mb"): series(lambda i: 50 + (i % 20) * 0.5)},
        [ev("worker_spawned", t) for t in range(0, N, 20)]), []),
    # ---- restarts
    ("crash loop", analyze.restart_hot_spots, hist({}, [
        ev("worker_exited", t, exit_code=3, signal=None, uptime_s=0.4) for t in range(0, 60, 6)]),
     [("restart_hot_spot", "b", "critical")]),
    ("OOM kills", analyze.restart_hot_spots, hist({}, [
        ev("worker_exited", t, exit_code=None, signal=9, uptime_s=60) for t in (10, 50, 90)]),
     [("restart_hot_spot", "b", "warning")]),
    ("planned stops are not restarts", analyze.restart_hot_spots, hist({}, [
        ev("worker_exited", t, exit_code=0, uptime_s=1, expected=True) for t in range(0, 60, 6)]), []),
    ("one exit", analyze.restart_hot_spots, hist({}, [ev("worker_exited", 5, exit_code=1, uptime_s=50)]), []),
    # ---- IPC
    ("SDK shed metrics", analyze.ipc_drops, hist({
        ("b", 0, "dropped"): series(lambda i: i * 100.0), ("b", 0, "messages"): series(lambda i: i * 10.0)}),
     [("ipc_drops", "b", "warning")]),
    ("frames rejected", analyze.ipc_drops, hist({(FLEET, BOT, "ipc.rejected"): series(lambda i: i // 10)}),
     [("ipc_rejected", "", "warning")]),
    ("nothing dropped", analyze.ipc_drops, hist({
        ("b", 0, "dropped"): const(0), ("b", 0, "messages"): series(lambda i: i * 10.0)}), []),
    # ---- database
    ("waits with the budget exhausted", analyze.db_pool_waits, hist({
        (FLEET, BOT, "db.budget"): const(20), (FLEET, BOT, "db.granted"): const(20),
        ("b", BOT, "db.waiting"): const(3), ("b", BOT, "db.wait_p95_ms"): const(250)},
        facts=Facts(db_reserve=10)),
     [("db_pool_waits", "b", "warning")]),
    ("waits but budget left: a pool too small is not the fleet's budget", analyze.db_pool_waits, hist({
        (FLEET, BOT, "db.budget"): const(20), (FLEET, BOT, "db.granted"): const(8),
        ("b", BOT, "db.waiting"): const(3)}), []),
    ("idle in transaction", analyze.db_pool_waits, hist({
        (FLEET, BOT, "db.budget"): const(20), (FLEET, BOT, "db.granted"): const(8),
        ("b", BOT, "db.idle_in_transaction"): const(2)}),
     [("db_idle_in_transaction", "b", "warning")]),
    # ---- cache
    ("low hit rate", analyze.cache_effectiveness, hist({
        ("b", BOT, "cache.hits"): series(lambda i: i * 2.0), ("b", BOT, "cache.misses"): series(lambda i: i * 8.0)},
        facts=Facts(cache_min_reads=1.0)),
     [("cache_hit_rate", "b", "warning")]),
    ("warms cost more than they save", analyze.cache_effectiveness, hist({
        ("b", BOT, "cache.hits"): series(lambda i: i * 0.5), ("b", BOT, "cache.misses"): series(lambda i: i * 0.1),
        (FLEET, BOT, "cache.warms.ok"): series(lambda i: i * 5.0)}),
     [("cache_warms_wasted", "", "warning")]),
    ("good hit rate", analyze.cache_effectiveness, hist({
        ("b", BOT, "cache.hits"): series(lambda i: i * 9.0), ("b", BOT, "cache.misses"): series(lambda i: i * 1.0)}), []),
    ("too few reads to judge", analyze.cache_effectiveness, hist({
        ("b", BOT, "cache.hits"): series(lambda i: i * 0.1), ("b", BOT, "cache.misses"): series(lambda i: i * 0.5)}), []),
    # ---- readiness
    ("ready slower than before", analyze.readiness_slower, hist({}, [
        *(ev("worker_ready", -1000 + t, after_s=0.5) for t in range(5)),
        *(ev("worker_ready", 10 + t, after_s=3.0) for t in range(3))]),
     [("readiness_slower", "b", "warning")]),
    ("ready as fast as before", analyze.readiness_slower, hist({}, [
        *(ev("worker_ready", -1000 + t, after_s=0.5) for t in range(5)),
        *(ev("worker_ready", 10 + t, after_s=0.6) for t in range(3))]), []),
    ("no earlier starts to compare", analyze.readiness_slower, hist({}, [
        ev("worker_ready", 10 + t, after_s=3.0) for t in range(3)]), []),
    # ---- the host
    ("CPU steal", analyze.host_pressure, hist({(FLEET, BOT, "host.cpu_steal_percent"): const(25)}),
     [("host_cpu_steal", "", "warning")]),
    ("memory pressure", analyze.host_pressure, hist({(FLEET, BOT, "host.mem_pressure"): const(50),
        ("b", 0, "cpu_percent"): const(10), ("b", BOT, "running"): const(3)}),
     [("host_memory_pressure", "", "critical")]),
    ("oversubscribed", analyze.host_pressure, hist({
        (FLEET, BOT, "host.load1"): const(4), (FLEET, BOT, "host.cpus"): const(2),
        **{("b", w, "cpu_percent"): const(100) for w in range(3)}, ("b", BOT, "running"): const(3)}),
     [("host_load", "", "warning")]),
    ("a quiet host", analyze.host_pressure, hist({
        (FLEET, BOT, "host.load1"): const(0.5), (FLEET, BOT, "host.cpus"): const(2),
        (FLEET, BOT, "host.cpu_steal_percent"): const(0.1), (FLEET, BOT, "host.mem_pressure"): const(0)}), []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "history", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(
    rule: Callable[[History], list[analyze.Finding]],
    history: History,
    expected: list[tuple[str, str, str]],
) -> None:
    found = rule(history)
    assert [(f.rule, f.bot, str(f.severity)) for f in found] == expected
    for f in found:
        assert f.evidence
        assert f.recommendation
        if f.rule not in ("ipc_rejected", "db_idle_in_transaction", "host_cpu_steal",
                          "supervisor_load"):  # fmt: skip
            assert f.key
            assert f.value


def test_recommendations_carry_numbers_from_the_history() -> None:
    """The value is computed, not canned: the HPA formula for max, the leak's start for the cap."""
    (pinned,) = analyze.pinned_at_max(CASES[0][2])
    assert (pinned.key, pinned.value) == ("bots.b.scale.max", "12")  # ceil(4 * 3.0)
    assert "3.00x" in pinned.evidence
    (leak,) = analyze.memory_growth(CASES[14][2])
    assert leak.key == "bots.b.max_memory_mb"
    assert leak.figures["mb_per_h"] == pytest.approx(360, rel=0.01)
    (flap,) = analyze.flapping(CASES[5][2])
    assert flap.value == '"2m"'  # 4x the 30 s window


def test_analyze_orders_worst_first_and_worst_is_the_exit_code() -> None:
    h = hist(
        {("b", 0, "cpu_percent"): const(99), (FLEET, BOT, "host.mem_pressure"): const(50)},
        [ev("worker_exited", t, exit_code=3, uptime_s=0.1) for t in range(0, 60, 6)],
    )
    found = analyze.analyze(h)
    assert [f.severity for f in found] == sorted((f.severity for f in found), reverse=True)
    assert analyze.worst(found) is Severity.CRITICAL
    assert analyze.worst(analyze.analyze(hist({("b", 0, "cpu_percent"): const(5)}))) is None


def test_increase_counts_a_counter_reset() -> None:
    assert analyze._increase([1, 5, 9, 2, 4]) == 8 + 2 + 2


def test_host_load_that_is_not_the_fleets_names_no_bot() -> None:
    h = hist({
        (FLEET, BOT, "host.load1"): const(20), (FLEET, BOT, "host.cpus"): const(2),
        ("b", 0, "cpu_percent"): const(10), ("b", BOT, "running"): const(3)})  # fmt: skip
    (f,) = analyze.host_pressure(h)
    assert (f.rule, f.key) == ("host_load", "")
    assert "not the fleet's" in f.recommendation
