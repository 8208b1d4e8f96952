"""The history on the monitor's web port: a page of charts and findings, and its two APIs.

    GET /history                          the history view and the Findings panel (history.html)
    GET /api/history?metric=M&since=1h[&bot=B]
                                          {"metric", "since_s", "series": {"bot:worker":
                                          [[ts, value], ...]}}, at most 300 points a series
    GET /api/findings[?since=1h]          {"findings": [...], "at": ts}: the analyzer's rules
                                          over the history (policy/analyze.py)

Reads run in a worker thread on a connection of their own (the writer's thread is the only
one that writes), so a long window never stalls the supervisor's loop. The monitor refreshes
its findings every FINDINGS_EVERY_S for the page and Prometheus (`supervisor_findings`).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
import structlog

from supervisor.history import analysis, store
from supervisor.history.store import StoreError
from supervisor.history.writer import Writer
from supervisor.plugins.base import Metric

log = structlog.get_logger("supervisor.monitor")

PATHS = frozenset({"/history", "/api/history", "/api/findings"})
FINDINGS_EVERY_S = 30.0
FINDINGS_WINDOW_S = 900.0
FINDINGS_POINTS = 120  # per series: the rules run in the supervisor's process, keep it light
MAX_POINTS = 300
SEVERITIES = ("info", "warning", "critical")


class Source(Protocol):
    """What these endpoints need of the monitor."""

    writer: Writer | None
    findings: list[dict[str, Any]]
    config_path: str  # the supervisor's TOML: the limits recommendations refer to


def wants(target: str) -> bool:
    return urlsplit(target).path in PATHS


async def respond(monitor: Source, target: str) -> tuple[int, str, bytes]:
    parts = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.path == "/history":
        page = resources.files("supervisor.plugins.monitor").joinpath("history.html")
        return 200, "text/html; charset=utf-8", page.read_bytes()
    writer = monitor.writer
    if writer is None:
        return 404, "application/json", _json({"error": "the history is off"})
    try:
        since_s = analysis.parse_since(query.get("since", "1h"))
        if parts.path == "/api/findings":
            found = await anyio.to_thread.run_sync(_findings, monitor, since_s)
            return 200, "application/json", _json({"at": time.time(), "findings": found})
        metric = query.get("metric", "")
        if not metric:
            return 400, "application/json", _json({"error": "metric=NAME is needed"})
        data = await anyio.to_thread.run_sync(
            _history, str(writer.path), metric, since_s, query.get("bot")
        )
    except StoreError as e:
        return 400, "application/json", _json({"error": str(e)})
    return 200, "application/json", _json(data)


def _history(path: str, metric: str, since_s: float, bot: str | None) -> dict[str, Any]:
    conn = store.open_for_reading(Path(path))
    try:
        now = time.time()
        step = since_s / MAX_POINTS if since_s > MAX_POINTS else None
        found = store.samples(conn, now - since_s, now, bot=bot, metric=metric, step=step)
    finally:
        conn.close()
    series = {}
    for (b, w, _), points in sorted(found.items()):
        if bot is not None and b != bot:
            continue
        name = f"{b or 'supervisor'}:{'bot' if w == store.BOT else w}"
        series[name] = [[round(t, 1), round(v, 4)] for t, v in thin(points, MAX_POINTS)]
    return {"metric": metric, "since_s": since_s, "series": series}


def thin(points: list[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    """At most `most` points: the mean of each of `most` equal slices of time."""
    if len(points) <= most:
        return points
    start, end = points[0][0], points[-1][0]
    width = (end - start) / most or 1.0
    buckets: dict[int, list[tuple[float, float]]] = {}
    for t, v in points:
        buckets.setdefault(min(int((t - start) / width), most - 1), []).append((t, v))
    return [
        (sum(t for t, _ in b) / len(b), sum(v for _, v in b) / len(b))
        for _, b in sorted(buckets.items())
    ]


def _findings(
    monitor: Source, since_s: float, points: int = analysis.POINTS
) -> list[dict[str, Any]]:
    """The rules over the last since_s (in a worker thread: it reads the file and the config)."""
    from supervisor.config import model  # noqa: PLC0415

    writer = monitor.writer
    if writer is None or not monitor.config_path:
        return []
    config = model.load(monitor.config_path)
    conn = store.open_for_reading(writer.path)
    try:
        _, found = analysis.findings(conn, config, None, since_s, points=points)
    finally:
        conn.close()
    return [f.as_dict() for f in found]


async def keep_findings(monitor: Source) -> None:
    """Refresh monitor.findings now and then, for /metrics (the page asks /api/findings)."""
    await anyio.sleep(FINDINGS_EVERY_S / 3)  # the first samples are in by then
    while True:
        try:
            monitor.findings = await anyio.to_thread.run_sync(
                _findings, monitor, FINDINGS_WINDOW_S, FINDINGS_POINTS
            )
        except StoreError:
            monitor.findings = []  # nothing written yet
        except Exception:
            log.exception("findings_failed")
        await anyio.sleep(FINDINGS_EVERY_S)


def metrics(monitor: Source) -> list[Metric]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in monitor.findings:
        counts[f["severity"]] = counts.get(f["severity"], 0) + 1
    return [
        Metric(
            "supervisor_findings",
            "gauge",
            f"The analyzer's findings over the last {FINDINGS_WINDOW_S:g}s, by severity.",
            tuple(({"severity": s}, float(n)) for s, n in counts.items()),
        )
    ]


def _json(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()
