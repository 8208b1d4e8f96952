"""The analyzer's rules: a window of the fleet's history in, findings out. Pure.

    findings = analyze(History(start, end, series, events, facts))

`series` maps (bot, worker, metric) to (ts, value) points (worker -1: the bot itself; bot "":
the supervisor and the host; names as recorder.py writes them), `events` are fleet events
(dicts with ts, event, bot, worker and their fields), and `facts` the config in force (the
limits a recommendation is measured against). Every rule is a function History -> findings;
each finding has a severity, the evidence (numbers and the window they come from) and a
recommendation naming a config key and a value. Worst first.

The thresholds are the module constants below; they are deliberately plain (a mean over the
window, a share of samples, a least-squares fit) so that an operator can check a finding by
hand against `/api/history`.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, int, str]
Points = Sequence[tuple[float, float]]

BOT = -1
FLEET = ""

PINNED_SHARE = 0.8  # desired at max for this share of the window's samples
FLAP_REVERSALS = 4  # up-down-up... direction changes in the window
CPU_SATURATED = 90.0  # percent of one core, mean over the window
CPU_SHARE = 0.8  # ... and above it for this share of the samples
LOOP_LAG_S = 0.05  # the supervisor's loop, mean lag
SUPERVISOR_CPU = 50.0  # percent of a core, the supervisor's own
GROWTH_MB_PER_H = 20.0  # a steady RSS climb above this is a leak
GROWTH_R2 = 0.8  # ... steady: the fit explains this much of the variance
GROWTH_MIN_SPAN_S = 30.0
RESTARTS_WARN = 3  # unexpected exits in the window, per bot
CRASH_UPTIME_S = 10.0  # exits this soon after the start count toward a crash loop
CRASH_LOOP = 5
HIT_RATE_LOW = 0.5
HIT_MIN_READS = 100
READY_SLOWER = 1.5  # median ready time this much above the earlier median (and +0.5 s)
STEAL_PERCENT = 10.0
MEM_PRESSURE = 10.0  # PSI memory "some" avg10, percent
LOAD_PER_CPU = 1.5


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    CRITICAL = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class BotFacts:
    """One bot's settings in force (from the config), for recommendations."""

    workers: int = 1
    scale_min: int | None = None  # None: not autoscaled
    scale_max: int | None = None
    tolerance: float = 0.1
    scale_down_window_s: float = 30.0
    max_memory_mb: float = 0.0
    ready_timeout_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Facts:
    bots: Mapping[str, BotFacts] = field(default_factory=dict)
    monitor_interval_s: float = 1.0
    db_reserve: int | None = None  # None: no db_tuning plugin
    cache_min_reads: float | None = None  # None: no cache_warmer plugin


@dataclass(frozen=True, slots=True)
class History:
    start: float
    end: float
    series: Mapping[Key, Points]
    events: Sequence[Mapping[str, Any]] = ()  # the window's and, for comparisons, earlier ones
    facts: Facts = field(default_factory=Facts)

    def get(self, bot: str, worker: int, metric: str) -> list[float]:
        return [v for t, v in self.series.get((bot, worker, metric), ()) if t >= self.start]

    def points(self, bot: str, worker: int, metric: str) -> list[tuple[float, float]]:
        return [(t, v) for t, v in self.series.get((bot, worker, metric), ()) if t >= self.start]

    def bots(self) -> list[str]:
        return sorted({k[0] for k in self.series if k[0] != FLEET})

    def workers(self, bot: str) -> list[int]:
        return sorted({k[1] for k in self.series if k[0] == bot and k[1] != BOT})

    def window_events(self, *names: str) -> list[Mapping[str, Any]]:
        return [
            e for e in self.events if e.get("event") in names and self.start <= e["ts"] <= self.end
        ]

    @property
    def covered_s(self) -> float:
        """How much of the window has samples (the fleet may have run for less of it)."""
        times = [p[0] for pts in self.series.values() for p in (pts[0], pts[-1]) if pts]
        times = [t for t in times if self.start <= t <= self.end]
        return max(max(times) - min(times), 1.0) if times else max(self.end - self.start, 1.0)

    @property
    def window(self) -> str:
        """The window for people: "1h", or "1h (20m of data)"."""
        whole, covered = self.end - self.start, self.covered_s
        if covered < whole * 0.9:
            return f"{_duration(whole)} ({_duration(covered)} of data)"
        return _duration(whole)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Severity
    bot: str  # "" for the supervisor or the host
    title: str
    evidence: str  # numbers and the window, for people
    recommendation: str
    key: str  # the config key to change ("" when none fits)
    value: str  # ... and the value to give it
    figures: Mapping[str, float] = field(default_factory=dict)  # the numbers, for scripts
    worker: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule, "severity": str(self.severity), "bot": self.bot,
            "worker": self.worker, "title": self.title, "evidence": self.evidence,
            "recommendation": self.recommendation, "key": self.key, "value": self.value,
            "figures": dict(self.figures),
        }  # fmt: skip


Rule = Callable[[History], list[Finding]]


def analyze(history: History, rules: Sequence[Rule] | None = None) -> list[Finding]:
    """Every rule's findings, worst first (then by bot and rule)."""
    found = [f for rule in (RULES if rules is None else rules) for f in rule(history)]
    return sorted(found, key=lambda f: (-f.severity, f.bot, f.rule, f.worker or 0))


def worst(findings: Sequence[Finding]) -> Severity | None:
    return max((f.severity for f in findings), default=None)


# ---------------------------------------------------------------- scaling


def pinned_at_max(h: History) -> list[Finding]:
    """Autoscaling wants more than `max` allows: desired sits at max while load > target."""
    out = []
    for bot in h.bots():
        desired, maxes = h.get(bot, BOT, "desired"), h.get(bot, BOT, "scale.max")
        if len(desired) < 3 or not maxes:
            continue
        top = maxes[-1]
        share = sum(1 for d in desired if d >= top) / len(desired)
        if share < PINNED_SHARE:
            continue
        ratios = {
            k[2][len("scale.") : -len(".ratio")]: statistics.fmean(v)
            for k in h.series
            if k[0] == bot and k[1] == BOT and k[2].startswith("scale.") and k[2].endswith(".ratio")
            if (v := h.get(*k))
        }
        facts = h.facts.bots.get(bot, BotFacts())
        over = {m: r for m, r in ratios.items() if r > 1 + facts.tolerance}
        if not over:
            continue
        metric, ratio = max(over.items(), key=lambda kv: kv[1])
        wanted = math.ceil(top * ratio)
        out.append(
            Finding(
                "pinned_at_max",
                Severity.CRITICAL if ratio >= 2 else Severity.WARNING,
                bot,
                f"{bot} is held at its autoscaling max with load above target",
                f"desired = max ({top:g}) for {share:.0%} of the last {h.window}; "
                f"{metric} at {ratio:.2f}x its target (mean)",
                f"raise the max to about {wanted} (ceil(max x load/target)), or the target is "
                "too low for this bot",
                f"bots.{bot}.scale.max",
                str(wanted),
                {"max": top, "share_at_max": round(share, 3), "load_ratio": round(ratio, 3)},
            )
        )
    return out


def flapping(h: History) -> list[Finding]:
    """The count goes up and down and up again: the scale-down window is too short."""
    out = []
    by_bot: dict[str, list[Mapping[str, Any]]] = {}
    for e in h.window_events("bot_scaled"):
        by_bot.setdefault(str(e.get("bot")), []).append(e)
    for bot, scaled in sorted(by_bot.items()):
        steps = [_num(e.get("desired")) - _num(e.get("previous")) for e in scaled]
        signs = [1 if s > 0 else -1 for s in steps if s != 0]
        reversals = sum(1 for a, b in itertools.pairwise(signs) if a != b)
        if reversals < FLAP_REVERSALS:
            continue
        facts = h.facts.bots.get(bot, BotFacts())
        wider = max(60.0, facts.scale_down_window_s * 4)
        out.append(
            Finding(
                "flapping",
                Severity.WARNING,
                bot,
                f"{bot} flaps: its worker count goes up and down",
                f"{len(scaled)} scaling changes, {reversals} reversals of direction in the last "
                f"{h.window} (scale_down_window_s is {facts.scale_down_window_s:g}s)",
                f"widen the scale-down window to {_duration(wider)} (or raise tolerance above "
                f"{facts.tolerance:g})",
                f"bots.{bot}.scale.scale_down_window_s",
                _toml_duration(wider),
                {"changes": len(scaled), "reversals": reversals},
            )
        )
    return out


# ---------------------------------------------------------------- CPU and the supervisor


def cpu_saturated(h: History) -> list[Finding]:
    """Workers that use a whole core nearly all the time are CPU-bound."""
    out = []
    for bot in h.bots():
        hot = []
        for w in h.workers(bot):
            cpu = h.get(bot, w, "cpu_percent")
            if len(cpu) < 3:
                continue
            share = sum(1 for c in cpu if c >= CPU_SATURATED) / len(cpu)
            if statistics.fmean(cpu) >= CPU_SATURATED and share >= CPU_SHARE:
                hot.append((w, statistics.fmean(cpu)))
        if not hot:
            continue
        facts = h.facts.bots.get(bot, BotFacts())
        mean = statistics.fmean(c for _, c in hot)
        if facts.scale_max is not None:
            key, value = f"bots.{bot}.scale.max", str(facts.scale_max + len(hot))
            advice = "let autoscaling add workers (a higher max) or make the work cheaper"
        else:
            key, value = f"bots.{bot}.workers", str(facts.workers + len(hot))
            advice = "run more workers (or make the work cheaper)"
        out.append(
            Finding(
                "cpu_saturated",
                Severity.WARNING,
                bot,
                f"{bot}: {len(hot)} worker(s) CPU-bound",
                f"workers {', '.join(str(w) for w, _ in hot)} at {mean:.0f}% CPU (mean) over the "
                f"last {h.window}, above {CPU_SATURATED:g}% in >= {CPU_SHARE:.0%} of samples",
                advice,
                key,
                value,
                {"workers_saturated": len(hot), "cpu_percent": round(mean, 1)},
            )
        )
    return out


def supervisor_load(h: History) -> list[Finding]:
    """The supervisor itself is the bottleneck: its loop lags or it burns CPU."""
    lag, cpu = h.get(FLEET, BOT, "loop_lag_s"), h.get(FLEET, BOT, "cpu_percent")
    mean_lag = statistics.fmean(lag) if lag else 0.0
    mean_cpu = statistics.fmean(cpu) if cpu else 0.0
    if mean_lag < LOOP_LAG_S and mean_cpu < SUPERVISOR_CPU:
        return []
    span = h.covered_s
    messages = _increase(h.get(FLEET, BOT, "ipc.messages")) / span
    events = _increase(h.get(FLEET, BOT, "events_published")) / span
    senders = Counter(
        {
            bot: sum(_increase(h.get(bot, w, "messages")) for w in h.workers(bot)) / span
            for bot in h.bots()
        }
    )
    top = senders.most_common(1)
    sampled = len({(k[0], k[1]) for k in h.series if k[2] == "cpu_percent"})
    if events > messages and events > 100:
        cost, key, value = (
            f"{events:.0f} events/s (log lines?)",
            "bots.NAME.log_output_events",
            "false",
        )
        if top:
            key = f"bots.{top[0][0]}.log_output_events"
    elif top and top[0][1] > 1000:
        cost = (
            f"{messages:.0f} worker messages/s, most from {top[0][0]} ({top[0][1]:.0f}/s): have "
            "it report sums (w.count(n) once per batch of jobs) instead of one metric per job"
        )
        key, value = "", ""  # the bot's code, not a setting
    else:
        interval = h.facts.monitor_interval_s
        cost = f"sampling {sampled} processes every {interval:g}s"
        key, value = "plugins.monitor.interval_s", _toml_duration(max(2.0, interval * 2))
    return [
        Finding(
            "supervisor_load",
            Severity.CRITICAL if mean_lag >= LOOP_LAG_S * 4 else Severity.WARNING,
            FLEET,
            "the supervisor's loop is behind",
            f"loop lag {mean_lag * 1000:.0f} ms and supervisor CPU {mean_cpu:.0f}% (means over "
            f"the last {h.window}); {messages:.0f} messages/s, {events:.0f} events/s",
            f"what costs it most: {cost}",
            key,
            value,
            {
                "loop_lag_s": round(mean_lag, 4),
                "cpu_percent": round(mean_cpu, 1),
                "messages_per_s": round(messages, 1),
                "events_per_s": round(events, 1),
            },
        )
    ]


# ---------------------------------------------------------------- memory


def memory_growth(h: History) -> list[Finding]:
    """A worker whose RSS climbs steadily: the fitted rate and the time to its limit."""
    out = []
    spawns: dict[tuple[str, int], list[float]] = {}
    for e in h.window_events("worker_spawned"):
        spawns.setdefault((str(e.get("bot")), int(e.get("worker", BOT))), []).append(e["ts"])
    for bot in h.bots():
        facts = h.facts.bots.get(bot, BotFacts())
        for w in h.workers(bot):
            leak = _leaking_process(h.points(bot, w, "rss_mb"), spawns.get((bot, w), []))
            if leak is None:
                continue
            pts, slope_h, r2 = leak
            now_mb = pts[-1][1]
            limit = facts.max_memory_mb
            if limit > 0:
                hours = max(0.0, (limit - now_mb) / slope_h)
                to_limit = f"reaches max_memory_mb ({limit:g}) in {_duration(hours * 3600)}"
                key, value = f"bots.{bot}.max_memory_mb", f"{limit:g}"  # it works: fix the leak
            else:
                hours = math.inf
                to_limit = "no max_memory_mb set: nothing stops it"
                cap = math.ceil(max(2 * pts[0][1], pts[0][1] + 100) / 10) * 10  # 2x its start
                key, value = f"bots.{bot}.max_memory_mb", str(cap)
            out.append(
                Finding(
                    "memory_growth",
                    Severity.CRITICAL if hours < 1 else Severity.WARNING,
                    bot,
                    f"{bot} worker {w} leaks memory",
                    f"RSS {pts[0][1]:.0f} -> {now_mb:.0f} MB over "
                    f"{_duration(pts[-1][0] - pts[0][0])}: {slope_h:.0f} MB/h fitted "
                    f"(r2 {r2:.2f}); {to_limit}",
                    "cap it so the worker is recycled before it hurts the host, and alert on "
                    "rss_growth_mb_per_h ([[plugins.monitor.alerts]])",
                    key,
                    value,
                    {
                        "mb_per_h": round(slope_h, 1),
                        "r2": round(r2, 3),
                        "rss_mb": round(now_mb, 1),
                        "hours_to_limit": round(hours, 2) if hours != math.inf else -1.0,
                    },
                    worker=w,
                )
            )
    return out


def _leaking_process(
    points: Sequence[tuple[float, float]], spawns: Sequence[float]
) -> tuple[list[tuple[float, float]], float, float] | None:
    """The newest process of a slot (a spawn starts a new one) whose RSS climbs steadily:
    its points, MB/h and r2. A restart (the leak recycled) does not hide the leak before it."""
    cuts = sorted(spawns)
    segments: list[list[tuple[float, float]]] = [[] for _ in range(len(cuts) + 1)]
    for t, v in points:
        segments[bisect.bisect_right(cuts, t)].append((t, v))
    for pts in reversed(segments):
        fit = fit_line(pts)
        if fit is None or pts[-1][0] - pts[0][0] < GROWTH_MIN_SPAN_S:
            continue
        slope_h, r2 = fit[0] * 3600, fit[1]
        if slope_h >= GROWTH_MB_PER_H and r2 >= GROWTH_R2:
            return pts, slope_h, r2
    return None


def fit_line(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (slope per second, r squared); None with fewer than 5 points."""
    if len(points) < 5:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    stt = sum((t - mt) ** 2 for t, _ in points)
    svv = sum((v - mv) ** 2 for _, v in points)
    if stt == 0:
        return None
    stv = sum((t - mt) * (v - mv) for t, v in points)
    slope = stv / stt
    r2 = (stv * stv) / (stt * svv) if svv > 0 else 0.0
    return slope, r2


# ---------------------------------------------------------------- restarts


def restart_hot_spots(h: History) -> list[Finding]:
    """The bots and exit codes or signals behind most restarts; crash loops; OOM kills."""
    out = []
    exits: dict[str, list[Mapping[str, Any]]] = {}
    for e in h.window_events("worker_exited"):
        if not e.get("expected"):
            exits.setdefault(str(e.get("bot")), []).append(e)
    failed = {str(e.get("bot")) for e in h.window_events("worker_failed", "bot_failed")}
    over_memory = Counter(str(e.get("bot")) for e in h.window_events("worker_over_memory"))
    for bot in sorted(set(exits) | failed):
        mine = exits.get(bot, [])
        causes = Counter(_cause(e) for e in mine)
        quick = sum(1 for e in mine if _num(e.get("uptime_s")) < CRASH_UPTIME_S)
        loop = bot in failed or quick >= CRASH_LOOP
        oom = causes.get("signal 9 (SIGKILL)", 0) - over_memory.get(bot, 0)
        if len(mine) < RESTARTS_WARN and not loop:
            continue
        facts = h.facts.bots.get(bot, BotFacts())
        per_h = len(mine) / h.covered_s * 3600
        top = ", ".join(f"{c} x{n}" for c, n in causes.most_common(3))
        if oom > 0:
            advice = (
                f"{oom} exits were SIGKILLs the supervisor did not send: likely the kernel's OOM "
                "killer; give it memory or cap it below the host's limit"
            )
            key, value = f"bots.{bot}.max_memory_mb", str(int(facts.max_memory_mb or 512))
        elif loop:
            advice = (
                f"it crash-loops ({quick} exits within {CRASH_UPTIME_S:g}s of starting): read "
                f"`supervisor logs {bot}`; meanwhile back off longer between restarts"
            )
            key, value = f"bots.{bot}.backoff_max_s", '"60s"'
        else:
            advice = f"find why it exits: `supervisor logs {bot}`"
            key, value = f"bots.{bot}.restart_window_s", '"5m"'
        out.append(
            Finding(
                "restart_hot_spot",
                Severity.CRITICAL if loop else Severity.WARNING,
                bot,
                f"{bot} {'crash-loops' if loop else 'restarts often'}",
                f"{len(mine)} unexpected exits in the last {h.window} ({per_h:.0f}/h): {top or '-'}"
                + ("; a worker failed (gave up restarting)" if bot in failed else ""),
                advice,
                key,
                value,
                {
                    "exits": len(mine),
                    "per_hour": round(per_h, 1),
                    "quick_exits": quick,
                    "oom_kills": max(oom, 0),
                },
            )
        )
    return out


def _cause(e: Mapping[str, Any]) -> str:
    sig = e.get("signal")
    if isinstance(sig, int) and sig > 0:
        names = {9: "SIGKILL", 15: "SIGTERM", 11: "SIGSEGV", 6: "SIGABRT", 2: "SIGINT"}
        return f"signal {sig} ({names.get(sig, '?')})"
    return f"exit code {e.get('exit_code')}"


# ---------------------------------------------------------------- IPC


def ipc_drops(h: History) -> list[Finding]:
    """Metrics the SDK shed (its buffer was full) and frames the supervisor dropped."""
    out = []
    span = h.covered_s
    lagging = statistics.fmean(h.get(FLEET, BOT, "loop_lag_s") or [0.0]) >= LOOP_LAG_S
    for bot in h.bots():
        dropped = {w: _increase(h.get(bot, w, "dropped")) for w in h.workers(bot)}
        total = sum(dropped.values())
        if total <= 0:
            continue
        sent = sum(_increase(h.get(bot, w, "messages")) for w in h.workers(bot))
        if lagging:
            advice = "the supervisor is behind (see its loop lag): lighten its load first"
            key, value = "plugins.monitor.interval_s", '"2s"'
        else:
            advice = (
                "the bot reports faster than the supervisor takes them: report less often "
                "(aggregate in the bot), or spread the work over more workers"
            )
            key, value = f"bots.{bot}.workers", "more workers, or fewer metrics per job"
        out.append(
            Finding(
                "ipc_drops",
                Severity.WARNING,
                bot,
                f"{bot}: metrics shed by the SDK",
                f"{total:.0f} metrics dropped ({total / span:.0f}/s) against {sent:.0f} delivered "
                f"over the last {h.window}, from workers "
                + ", ".join(str(w) for w, n in dropped.items() if n > 0),
                advice,
                key,
                value,
                {"dropped": total, "dropped_per_s": round(total / span, 1), "delivered": sent},
            )
        )
    rejected = _increase(h.get(FLEET, BOT, "ipc.rejected"))
    if rejected > 0:
        out.append(
            Finding(
                "ipc_rejected",
                Severity.WARNING,
                FLEET,
                "the supervisor dropped malformed frames",
                f"{rejected:.0f} frames rejected in the last {h.window}",
                "a worker speaks a different protocol version or is not ours: check `status` "
                "rejected reasons and each bot's supervisor package version",
                "",
                "",
                {"rejected": rejected},
            )
        )
    return out


# ---------------------------------------------------------------- database and cache


def db_pool_waits(h: History) -> list[Finding]:
    """Workers wait for pool connections while the fleet's budget is all granted."""
    out: list[Finding] = []
    budget, granted = h.get(FLEET, BOT, "db.budget"), h.get(FLEET, BOT, "db.granted")
    if not budget or not granted:
        return out
    exhausted = sum(1 for b, g in zip(budget, granted, strict=False) if g >= b > 0) / min(
        len(budget), len(granted)
    )
    for bot in h.bots():
        waiting = h.get(bot, BOT, "db.waiting")
        p95 = h.get(bot, BOT, "db.wait_p95_ms")
        if not waiting or statistics.fmean(waiting) <= 0.5 or exhausted < 0.5:
            continue
        top = budget[-1]
        reserve = h.facts.db_reserve
        if reserve:
            key, value = "plugins.db_tuning.reserve", str(max(0, reserve // 2))
        else:
            key, value = "plugins.db_tuning.max_fleet_connections", str(int(top * 1.5))
        out.append(
            Finding(
                "db_pool_waits",
                Severity.WARNING,
                bot,
                f"{bot} waits for database connections and the budget is exhausted",
                f"{statistics.fmean(waiting):.1f} waiting (mean), p95 wait "
                f"{max(p95 or [0.0]):.0f} ms; budget {top:g} all granted {exhausted:.0%} of the "
                f"last {h.window}",
                "give the fleet more connections (lower the reserve or raise the cap), or find "
                "the bot that holds them",
                key,
                value,
                {"waiting": round(statistics.fmean(waiting), 2), "budget": top},
            )
        )
    for bot in h.bots():
        idle = h.get(bot, BOT, "db.idle_in_transaction")
        if idle and statistics.fmean(idle) >= 1:
            out.append(
                Finding(
                    "db_idle_in_transaction",
                    Severity.WARNING,
                    bot,
                    f"{bot} leaves transactions open",
                    f"{statistics.fmean(idle):.1f} backends idle in transaction (mean) over "
                    f"the last {h.window}",
                    "commit or roll back before awaiting anything else; a server-side "
                    "idle_in_transaction_session_timeout ends the stragglers",
                    "",
                    "",
                    {"idle_in_transaction": round(statistics.fmean(idle), 2)},
                )
            )
    return out


def cache_effectiveness(h: History) -> list[Finding]:
    """A low hit rate with enough reads, or warms that load more than they save."""
    out = []
    min_reads = h.facts.cache_min_reads
    for bot in h.bots():
        hits = _increase(h.get(bot, BOT, "cache.hits"))
        misses = _increase(h.get(bot, BOT, "cache.misses"))
        reads = hits + misses
        if reads < HIT_MIN_READS:
            continue
        rate = hits / reads
        if rate >= HIT_RATE_LOW:
            continue
        lower = max(0.1, (min_reads or 1.0) / 2)
        out.append(
            Finding(
                "cache_hit_rate",
                Severity.WARNING,
                bot,
                f"{bot}: cache hit rate {rate:.0%}",
                f"{hits:.0f} hits of {reads:.0f} reads over the last {h.window}",
                "warm more keys before they expire: a lower read rate qualifies a key",
                "plugins.cache_warmer.min_reads",
                f"{lower:g}",
                {"hit_rate": round(rate, 3), "reads": reads},
            )
        )
    warms = _increase(h.get(FLEET, BOT, "cache.warms.ok"))
    hits = sum(_increase(h.get(b, BOT, "cache.hits")) for b in h.bots())
    if warms >= HIT_MIN_READS and warms > hits:
        out.append(
            Finding(
                "cache_warms_wasted",
                Severity.WARNING,
                FLEET,
                "cache warms cost more loads than they save",
                f"{warms:.0f} warms (each a load) against {hits:.0f} hits over the last {h.window}",
                "warm only keys that are read more often",
                "plugins.cache_warmer.min_reads",
                f"{max(2.0, (min_reads or 1.0) * 2):g}",
                {"warms": warms, "hits": hits},
            )
        )
    return out


# ---------------------------------------------------------------- start-up and host


def readiness_slower(h: History) -> list[Finding]:
    """Workers take longer to become ready than they used to (a start-up regression)."""
    out = []
    before: dict[str, list[float]] = {}
    now: dict[str, list[float]] = {}
    for e in h.events:
        if e.get("event") != "worker_ready" or not isinstance(e.get("after_s"), int | float):
            continue
        side = now if e["ts"] >= h.start else before
        side.setdefault(str(e.get("bot")), []).append(float(e["after_s"]))
    for bot, times in sorted(now.items()):
        earlier = before.get(bot, [])
        if len(times) < 2 or len(earlier) < 2:
            continue
        was, is_ = statistics.median(earlier), statistics.median(times)
        if is_ < was * READY_SLOWER or is_ - was < 0.5:
            continue
        facts = h.facts.bots.get(bot, BotFacts())
        out.append(
            Finding(
                "readiness_slower",
                Severity.WARNING,
                bot,
                f"{bot} takes longer to become ready",
                f"median time to ready {is_:.1f}s in the last {h.window} ({len(times)} starts), "
                f"was {was:.1f}s before ({len(earlier)} starts)",
                "a start-up regression: look at what the bot does before ready(); keep "
                "ready_timeout_s well above it",
                f"bots.{bot}.ready_timeout_s",
                _toml_duration(max(facts.ready_timeout_s, is_ * 3)),
                {"ready_s": round(is_, 3), "ready_s_before": round(was, 3)},
            )
        )
    return out


def host_pressure(h: History) -> list[Finding]:
    """The host, not the fleet, is the bottleneck: CPU steal, memory pressure, load."""
    out = []
    steal = h.get(FLEET, BOT, "host.cpu_steal_percent")
    pressure = h.get(FLEET, BOT, "host.mem_pressure")
    load, cpus = h.get(FLEET, BOT, "host.load1"), h.get(FLEET, BOT, "host.cpus")
    top = _top_cpu_bot(h)
    key, value = (f"bots.{top[0]}.workers", str(max(1, top[1] - 1))) if top else ("", "")
    if steal and statistics.fmean(steal) >= STEAL_PERCENT:
        out.append(
            Finding(
                "host_cpu_steal",
                Severity.WARNING,
                FLEET,
                "the hypervisor takes CPU from this host",
                f"CPU steal {statistics.fmean(steal):.0f}% (mean) over the last {h.window}",
                "the host, not the fleet, is short of CPU: move to a less crowded host or a "
                "bigger instance; the fleet cannot tune this away",
                "",
                "",
                {"steal_percent": round(statistics.fmean(steal), 1)},
            )
        )
    if pressure and statistics.fmean(pressure) >= MEM_PRESSURE:
        out.append(
            Finding(
                "host_memory_pressure",
                Severity.CRITICAL
                if statistics.fmean(pressure) >= 4 * MEM_PRESSURE
                else Severity.WARNING,
                FLEET,
                "the host is short of memory",
                f"memory pressure (PSI some avg10) {statistics.fmean(pressure):.0f}% (mean) over "
                f"the last {h.window}",
                "tasks stall waiting for memory: cap the biggest bots' memory or run fewer workers",
                key,
                value,
                {"mem_pressure": round(statistics.fmean(pressure), 1)},
            )
        )
    if load and cpus and statistics.fmean(load) / cpus[-1] >= LOAD_PER_CPU:
        per = statistics.fmean(load) / cpus[-1]
        mine = top[2] if top else 0.0
        fleet_share = mine / 100 / max(statistics.fmean(load), 1e-9)
        if fleet_share < 0.5 or (top and top[1] <= 1):
            key, value = "", ""  # most of the load is not ours, or nothing to take away
        out.append(
            Finding(
                "host_load",
                Severity.WARNING,
                FLEET,
                "the host's CPUs are oversubscribed",
                f"load {statistics.fmean(load):.1f} on {cpus[-1]:g} CPUs ({per:.1f} per CPU, mean "
                f"over the last {h.window}); the fleet's workers use {mine:.0f}% of a core in all",
                "run fewer workers of the fleet's biggest bot"
                if key
                else "most of that load is not the fleet's: other processes on the host",
                key,
                value,
                {"load_per_cpu": round(per, 2), "fleet_cpu_percent": round(mine, 1)},
            )
        )
    return out


def _top_cpu_bot(h: History) -> tuple[str, int, float] | None:
    """The bot using the most CPU, its worker count, and the fleet's total CPU percent."""
    use = {
        bot: sum(statistics.fmean(c) for w in h.workers(bot) if (c := h.get(bot, w, "cpu_percent")))
        for bot in h.bots()
    }
    if not use:
        return None
    bot = max(use, key=lambda b: use[b])
    running = h.get(bot, BOT, "running")
    return bot, int(running[-1]) if running else len(h.workers(bot)), sum(use.values())


RULES: tuple[Rule, ...] = (
    pinned_at_max,
    flapping,
    cpu_saturated,
    supervisor_load,
    memory_growth,
    restart_hot_spots,
    ipc_drops,
    db_pool_waits,
    cache_effectiveness,
    readiness_slower,
    host_pressure,
)


# ---------------------------------------------------------------- helpers


def _increase(values: Sequence[float]) -> float:
    """How much a counter grew, counting restarts of it (a drop) as a reset to zero."""
    total = 0.0
    for a, b in itertools.pairwise(values):
        total += b - a if b >= a else b
    return total


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0


def _duration(seconds: float) -> str:
    if seconds == math.inf:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            value = seconds / size
            return (
                f"{value:.0f}{unit}" if value >= 10 or value == int(value) else f"{value:.1f}{unit}"
            )
    return f"{seconds:.0f}s"


def _toml_duration(seconds: float) -> str:
    """A duration as the config takes it (ms, s, m, h)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f'"{seconds / 3600:g}h"'
    if seconds >= 60 and seconds % 60 == 0:
        return f'"{seconds / 60:g}m"'
    return f'"{math.ceil(seconds):d}s"'
