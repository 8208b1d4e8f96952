"""What the monitor writes to the history store (supervisor/history/) on every sample.

    [plugins.monitor.history]
    enabled = true            # false: keep nothing on disk
    raw_s = "1h"              # every sample is kept this long,
    minute_s = "24h"          # then as 1-minute buckets (mean, min, max) this long,
    ten_minute_s = "720h"     # then as 10-minute buckets this long
    max_mb = 512              # the file's cap: the oldest data goes first

Series (bot, worker, metric); worker -1 is the bot itself, bot "" the supervisor and host:

    per worker   cpu_percent rss_mb threads fds restarts ready messages dropped, and the
                 metrics it reports, as "m.NAME" (at most 16 per worker)
    per bot      desired running ready restarts; scale.min scale.max, and per scaling metric
                 scale.NAME (its value), scale.NAME.target and
                 scale.NAME.ratio (load / target); cache.hit_rate cache.hits
                 cache.misses; db.granted db.in_use db.waiting db.wait_p95_ms
                 db.idle_in_transaction db.pool_errors
    fleet        cpu_percent rss_mb (the supervisor's own), loop_lag_s ipc.messages
                 ipc.batches ipc.rejected events_published log_write_failures
                 history.dropped; cache.warms.OUTCOME cache.keys; db.budget db.granted
                 db.connections; host.load1 host.cpus host.cpu_steal_percent
                 host.mem_available_mb host.mem_total_mb host.mem_pressure host.cpu_pressure

Fleet events (RECORDED below) go to the events table with their fields.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from supervisor.config.fields import BadValue, Table, duration, number
from supervisor.history.store import BOT, FLEET, Retention
from supervisor.history.writer import Point

RECORDED = frozenset(
    {
        "bot_scaled", "worker_spawned", "worker_ready", "worker_exited", "worker_restarting",
        "worker_failed", "worker_stayed_down", "bot_failed", "worker_over_memory",
        "worker_recycled", "probe_failed", "worker_unhealthy", "worker_spawn_failed",
        "supervisor_started", "supervisor_stopping", "config_reloaded", "dependency_down",
        "dependency_up", "alert_firing", "alert_resolved",
    }
)  # fmt: skip
MAX_REPORTED = 16
_WORKER_FIELDS = ("restarts", "messages", "dropped")
SAMPLED = ("cpu_percent", "rss_mb", "threads", "fds")


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    enabled: bool = True
    retention: Retention = field(default_factory=Retention)


def configure(table: Table) -> HistoryConfig:
    """`[plugins.monitor.history]`."""
    t = table.sub("history")
    base = Retention()
    config = HistoryConfig(
        enabled=t.take("enabled", _flag, True),
        retention=Retention(
            raw_s=t.take("raw_s", duration, base.raw_s),
            minute_s=t.take("minute_s", duration, base.minute_s),
            ten_minute_s=t.take("ten_minute_s", duration, base.ten_minute_s),
            max_mb=t.take("max_mb", number(minimum=1.0), base.max_mb),
        ),
    )
    t.finish()
    r = config.retention
    if not r.raw_s <= r.minute_s <= r.ten_minute_s:
        t.problems.append(f"{t.path}: needs raw_s <= minute_s <= ten_minute_s")
    return config


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected true or false, got {value!r}")
    return value


def points(
    status: dict[str, Any], latest: dict[int, dict[str, float]], host: dict[str, float]
) -> list[Point]:
    """Every series' value now, from `status` (as `status --json`), the monitor's newest
    /proc samples by pid (`latest`) and the host's figures."""
    out: list[Point] = []
    for name, bot in status.get("bots", {}).items():
        _bot(out, name, bot, latest)
    header = status.get("supervisor", {})
    own = latest.get(int(header.get("pid", os.getpid())), {})
    for metric in ("cpu_percent", "rss_mb"):
        if metric in own:
            out.append(((FLEET, BOT, metric), own[metric]))
    workers = header.get("workers", {})
    fleet = {
        "loop_lag_s": header.get("loop_lag_s"),
        "ipc.messages": workers.get("messages"),
        "ipc.batches": workers.get("batches"),
        "ipc.rejected": sum(_numbers(workers.get("rejected", {}))),
        "events_published": header.get("events_published"),
        "log_write_failures": header.get("log_write_failures"),
    } | {f"host.{k}": v for k, v in host.items()}
    _plugins(out, status.get("plugins", {}), fleet)
    out += [((FLEET, BOT, k), float(v)) for k, v in fleet.items() if _is_number(v)]
    return out


def _bot(
    out: list[Point], name: str, bot: dict[str, Any], latest: dict[int, dict[str, float]]
) -> None:
    for metric in ("desired", "running", "ready", "restarts"):
        if _is_number(bot.get(metric)):
            out.append(((name, BOT, metric), float(bot[metric])))
    scale = bot.get("scale")
    if isinstance(scale, dict):
        out.append(((name, BOT, "scale.min"), float(scale.get("min", 0))))
        out.append(((name, BOT, "scale.max"), float(scale.get("max", 0))))
        for reading in scale.get("metrics", ()):
            label = reading.get("metric")
            if _is_number(reading.get("value")):
                out.append(((name, BOT, f"scale.{label}"), float(reading["value"])))
            if _is_number(reading.get("ratio")):
                out.append(((name, BOT, f"scale.{label}.ratio"), float(reading["ratio"])))
            if _is_number(reading.get("target")):
                out.append(((name, BOT, f"scale.{label}.target"), float(reading["target"])))
    for w in bot.get("workers", ()):
        pid, slot = w.get("pid"), int(w.get("slot", 0))
        if pid is None:
            continue
        sampled = latest.get(pid, {})
        for metric in SAMPLED:
            if metric in sampled:
                out.append(((name, slot, metric), sampled[metric]))
        out.append(((name, slot, "ready"), 1.0 if w.get("ready") else 0.0))
        for metric in _WORKER_FIELDS:
            if _is_number(w.get(metric)):
                out.append(((name, slot, metric), float(w[metric])))
        reported = [(k, v) for k, v in w.get("metrics", {}).items() if _is_number(v)]
        out += [((name, slot, f"m.{k}"), float(v)) for k, v in reported[:MAX_REPORTED]]


def _plugins(out: list[Point], plugins: dict[str, Any], fleet: dict[str, Any]) -> None:
    cache = plugins.get("cache_warmer")
    if isinstance(cache, dict):
        for bot, rate in cache.get("hit_rate", {}).items():
            if _is_number(rate):
                out.append(((bot, BOT, "cache.hit_rate"), float(rate)))
        for bot, reads in cache.get("reads", {}).items():
            for k in ("hits", "misses"):
                if _is_number(reads.get(k)):
                    out.append(((bot, BOT, f"cache.{k}"), float(reads[k])))
        for k, v in cache.get("warms", {}).items():
            fleet[f"cache.warms.{k}"] = v
        fleet["cache.keys"] = cache.get("keys_tracked")
    db = plugins.get("db_tuning")
    if isinstance(db, dict):
        fleet |= {"db.budget": db.get("budget"), "db.granted": db.get("granted")}
        fleet["db.connections"] = db.get("fleet_connections")
        for bot, row in db.get("bots", {}).items():
            for k in ("granted", "in_use", "waiting", "wait_p95_ms", "idle_in_transaction"):
                if _is_number(row.get(k)):
                    out.append(((bot, BOT, f"db.{k}"), float(row[k])))
            if _is_number(row.get("pool_errors")):
                out.append(((bot, BOT, "db.pool_errors"), float(row["pool_errors"])))


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _numbers(d: Any) -> list[float]:
    return [float(v) for v in d.values() if _is_number(v)] if isinstance(d, dict) else []


class HostSampler:
    """The host's load, CPU steal, memory and pressure (PSI), from /proc."""

    def __init__(self) -> None:
        self._last_cpu: tuple[float, float] | None = None  # (total jiffies, steal jiffies)

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {"cpus": float(os.cpu_count() or 1)}
        with contextlib.suppress(OSError):
            out["load1"] = os.getloadavg()[0]
        cpu = _read("/proc/stat").split("\n", 1)[0].split()
        if len(cpu) > 8 and cpu[0] == "cpu":
            total, steal = float(sum(int(x) for x in cpu[1:9])), float(cpu[8])
            if self._last_cpu is not None and total > self._last_cpu[0]:
                d_total = total - self._last_cpu[0]
                out["cpu_steal_percent"] = 100.0 * (steal - self._last_cpu[1]) / d_total
            self._last_cpu = (total, steal)
        mem = {}
        for line in _read("/proc/meminfo").splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable") and rest.split():
                mem[key] = float(rest.split()[0]) / 1024
        if "MemTotal" in mem:
            out["mem_total_mb"] = mem["MemTotal"]
        if "MemAvailable" in mem:
            out["mem_available_mb"] = mem["MemAvailable"]
        for kind in ("memory", "cpu"):
            some = _read(f"/proc/pressure/{kind}").split("\n", 1)[0].split()
            if some and some[0] == "some" and some[1].startswith("avg10="):
                out[f"{'mem' if kind == 'memory' else 'cpu'}_pressure"] = float(some[1][6:])
        return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
