"""`supervisor analyze`: the store read into the rules' input, findings and baselines printed.

The rules themselves are pure (supervisor/policy/analyze.py, policy/baseline.py); this module
reads the store, the config in force (for the limits recommendations refer to) and formats.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from typing import Any

from supervisor.config.model import Config
from supervisor.history import store
from supervisor.history.store import StoreError
from supervisor.policy import analyze, baseline
from supervisor.policy.analyze import BotFacts, Facts, Finding, History, Severity

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
POINTS = 720  # a series is read as at most about this many points (bucket means)
EVENTS_BEFORE = 8  # events this many windows back are read too (readiness "before")


def parse_since(text: str) -> float:
    """'90s', '15m', '1h', '7d' -> seconds; StoreError (one line) otherwise."""
    m = _SINCE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise StoreError(f'--since: expected a duration such as "15m", "1h" or "7d", got "{text}"')
    return float(m.group(1)) * _UNITS[m.group(2)]


def facts(config: Config) -> Facts:
    bots = {}
    for name, bot in config.bots.items():
        scale = bot.scale
        bots[name] = BotFacts(
            workers=bot.workers,
            scale_min=scale.min if scale else None,
            scale_max=scale.max if scale else None,
            tolerance=scale.tolerance if scale else 0.1,
            scale_down_window_s=scale.scale_down_window_s if scale else 30.0,
            max_memory_mb=bot.max_memory_mb,
            ready_timeout_s=bot.ready_timeout_s,
        )
    plugins = config.plugins
    monitor = plugins["monitor"].settings if "monitor" in plugins else None
    db = plugins["db_tuning"].settings if "db_tuning" in plugins else None
    cache = plugins["cache_warmer"].settings if "cache_warmer" in plugins else None
    return Facts(
        bots=bots,
        monitor_interval_s=float(getattr(monitor, "interval_s", 1.0)),
        db_reserve=getattr(db, "reserve", None),
        cache_min_reads=getattr(cache, "min_reads", None),
    )


def load(
    conn: sqlite3.Connection,
    since_s: float,
    facts_: Facts,
    bot: str | None,
    now: float,
    *,
    points: int = POINTS,
) -> History:
    start = now - since_s
    step = since_s / points if since_s > points * 2 else None  # else every sample
    series = store.samples(conn, start, now, bot=bot, step=step)
    events = store.events(conn, now - since_s * EVENTS_BEFORE, now, bot=bot)
    return History(start, now, series, events, facts_)


def open_checked(config: Config, bot: str | None) -> sqlite3.Connection:
    """The store for config's run_dir; StoreError for an unknown bot or an empty store."""
    conn = store.open_for_reading(store.path_in(config.supervisor.run_dir))
    if store.span(conn) is None:
        raise StoreError(f"{store.path_in(config.supervisor.run_dir)}: no samples yet")
    if bot is not None and bot not in config.bots and bot not in store.bots(conn):
        known = ", ".join(sorted(set(config.bots) | store.bots(conn))) or "none"
        raise StoreError(f"unknown bot {bot!r} (known: {known})")
    return conn


def findings(
    conn: sqlite3.Connection,
    config: Config,
    bot: str | None,
    since_s: float,
    now: float | None = None,
    *,
    points: int = POINTS,
) -> tuple[History, list[Finding]]:
    now = time.time() if now is None else now
    h = load(conn, since_s, facts(config), bot, now, points=points)
    found = analyze.analyze(h)
    if bot is not None:
        found = [f for f in found if f.bot in (bot, "")]
    return h, found


def exit_code(found: list[Finding]) -> int:
    """0 when nothing is worse than a warning, else 1."""
    return 1 if analyze.worst(found) == Severity.CRITICAL else 0


def as_json(h: History, found: list[Finding]) -> dict[str, Any]:
    return {
        "window": {"since": h.start, "until": h.end, "seconds": round(h.end - h.start, 3)},
        "series": len(h.series),
        "findings": [f.as_dict() for f in found],
    }


def format_findings(h: History, found: list[Finding]) -> str:
    first = min((p[0][0] for p in h.series.values() if p), default=h.start)
    lines = [
        f"{len(found)} finding(s) over the last {h.window} "
        f"({len(h.series)} series, data from {time.strftime('%H:%M:%S', time.localtime(first))})"
    ]
    for f in found:
        who = f.bot or "supervisor/host"
        lines += [
            "",
            f"{str(f.severity).upper():<8} {who}: {f.title}",
            f"         evidence: {f.evidence}",
            f"         do: {f.recommendation}",
        ]
        if f.key:
            lines.append(f"         set: {f.key} = {f.value}")
    if not found:
        lines.append("nothing to report: no rule found a bottleneck in this window")
    return "\n".join(lines)


# ---------------------------------------------------------------- baselines


def save(
    conn: sqlite3.Connection,
    config: Config,
    name: str,
    bot: str | None,
    since_s: float,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    h = load(conn, since_s, facts(config), bot, time.time() if now is None else now)
    figs = baseline.figures(h, bot)
    data = {b: {k: f.as_dict() for k, f in v.items()} for b, v in figs.items()}
    store.save_baseline(conn, name, since_s, bot or "", data)
    return data


def compare(
    conn: sqlite3.Connection,
    config: Config,
    name: str,
    bot: str | None,
    since_s: float,
    *,
    now: float | None = None,
) -> tuple[dict[str, Any], list[baseline.Change]]:
    saved = store.baseline(conn, name)
    if saved is None:
        names = ", ".join(store.baseline_names(conn)) or "none saved yet"
        raise StoreError(f"no baseline named {name!r} (saved: {names})")
    before = {
        b: {k: baseline.Figure.of(f) for k, f in figs.items()}
        for b, figs in saved["figures"].items()
        if bot is None or b in (bot, "")
    }
    h = load(conn, since_s, facts(config), bot, time.time() if now is None else now)
    return saved, baseline.compare(before, baseline.figures(h, bot))


def format_compare(saved: dict[str, Any], since_s: float, changes: list[baseline.Change]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(saved["saved_at"]))
    lines = [
        f"baseline {saved['name']!r} (saved {when}, over {analyze._duration(saved['since_s'])})"
        f" vs the last {analyze._duration(since_s)}; '*' = beyond the noise (2 standard errors)",
        f"{'bot':<14} {'figure':<24} {'baseline':>12} {'now':>12} {'change':>9}",
    ]
    for c in changes:
        change = "" if c.change is None else f"{c.change:+.0%}"
        mark = " *" if c.beyond_noise else ""
        lines.append(
            f"{c.bot or '(fleet)':<14} {c.figure:<24} {_show(c.before):>12} {_show(c.now):>12}"
            f" {change:>9}{mark}"
        )
    return "\n".join(lines)


def _show(f: baseline.Figure | None) -> str:
    if f is None:
        return "-"
    if f.mean == 0 or (math.isfinite(f.mean) and abs(f.mean) >= 100):
        return f"{f.mean:.0f}"
    return f"{f.mean:.3g}"


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
