"""The monitor plugin: samples, remembers, alerts, serves /metrics and a dashboard.

    [plugins.monitor]
    interval_s = "1s"              # sampling period
    history_s = "5m"               # how much of each series to keep
    trend_window_s = "2m"          # memory growth is fitted over this much
    listen = "127.0.0.1:9321"      # /, /metrics, /api/status, /api/dashboard; "" for none
    max_connections = 256          # open at once; beyond: a 503, closed and counted (web.py)
    tokens = { ops = { role = "operate", token_file = "/etc/supervisor/ops.token" } }
                                   # dashboard actions (actions.py); without: read-only

    [plugins.monitor.history]      # the on-disk history `supervisor analyze` reads; recorder.py
    max_mb = 512

    [[plugins.monitor.alerts]]     # any number; see alerts.py
    name = "leak"
    metric = "rss_growth_mb_per_h"
    above = 50
    for_s = "30s"
    action = "restart"

Every `interval_s` each live worker and the supervisor itself are sampled
from /proc (procstat.py): CPU %, RSS, threads, open fds, context switches
per second, and the memory growth rate (MB per hour, a least-squares fit
over `trend_window_s`). The metrics workers report through the SDK are
kept beside them. Each series is a fixed-size ring. Alert rules are
evaluated on every sample, per worker. Each sample, and the fleet's events, also go to the
history store (run_dir/history.sqlite3) through its writer thread.
"""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import structlog

from supervisor.config.fields import (
    BadValue,
    Table,
    duration,
    enum_choice,
    integer,
    number,
    string,
)
from supervisor.history.store import BOT, FLEET, path_in
from supervisor.history.writer import Writer
from supervisor.plugins.base import Host, Metric, Plugin, WorkerRef
from supervisor.plugins.monitor import history_api, procstat, recorder
from supervisor.plugins.monitor.actions import Token, take_tokens, warn_if_open
from supervisor.plugins.monitor.alerts import Action, Alert, Rule, State, evaluate
from supervisor.plugins.monitor.view import Series
from supervisor.plugins.monitor.web import Connections

log = structlog.get_logger("supervisor.monitor")

SCALING_TIMELINE = 200
_MAX_CONNECTIONS = 10_000


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    interval_s: float = 1.0
    history_s: float = 300.0
    trend_window_s: float = 120.0
    listen: str = "127.0.0.1:9321"
    max_connections: int = 256
    alerts: tuple[Rule, ...] = ()
    tokens: tuple[Token, ...] = ()  # dashboard actions (actions.py); none: read-only
    history: recorder.HistoryConfig = field(default_factory=recorder.HistoryConfig)

    @property
    def points(self) -> int:
        return max(2, int(self.history_s / self.interval_s))


class Monitor(Plugin):
    name = "monitor"
    subscribe = recorder.RECORDED - {"alert_firing", "alert_resolved"}  # its own: _report

    def __init__(self, config: MonitorConfig) -> None:
        super().__init__(config)
        self.config: MonitorConfig = config
        self.series: dict[int, Series] = {}  # by pid
        self.alerts: dict[tuple[str, int], Alert] = {}  # (rule, pid)
        self.scaling: deque[dict[str, Any]] = deque(maxlen=SCALING_TIMELINE)
        self.scaling_counts: dict[str, int] = {}
        self.fired = 0
        self.sample_ms = 0.0
        self.address = ""
        self._host: Host | None = None
        self.writer: Writer | None = None
        self.findings: list[dict[str, Any]] = []  # the analyzer's, refreshed by history_api
        self.config_path = ""
        self._host_sampler = recorder.HostSampler()
        self.connections = Connections(config.max_connections)

    @classmethod
    def configure(cls, table: Table) -> MonitorConfig:
        config = MonitorConfig(
            interval_s=table.take("interval_s", duration, 1.0),
            history_s=table.take("history_s", duration, 300.0),
            trend_window_s=table.take("trend_window_s", duration, 120.0),
            listen=table.take("listen", _address, "127.0.0.1:9321"),
            max_connections=table.take("max_connections", integer(1), 256),
            alerts=tuple(_rules(table)),
            tokens=take_tokens(table),
            history=recorder.configure(table),
        )
        table.finish()
        if config.max_connections > _MAX_CONNECTIONS:
            table.problems.append(
                f"{table.key_path('max_connections')}: at most {_MAX_CONNECTIONS} "
                f"(each is a task and a descriptor of the supervisor), got {config.max_connections}"
            )
        if config.interval_s <= 0:
            table.problems.append(f"{table.key_path('interval_s')}: must be more than 0")
        return config

    async def run(self, host: Host) -> None:
        self._host = host
        if self.config.history.enabled:
            header = host.status()["supervisor"]
            run_dir, self.config_path = header["run_dir"], header["config"]
            self.writer = Writer(path_in(run_dir), self.config.history.retention)
            self.writer.start()
        try:
            await self._run(host)
        finally:
            writer, self.writer = self.writer, None
            if writer is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(writer.stop)

    async def _run(self, host: Host) -> None:
        async with anyio.create_task_group() as tg:
            if self.config.listen:
                from supervisor.plugins.monitor.web import serve  # noqa: PLC0415

                address = await tg.start(
                    partial(serve, connections=self.connections),
                    self, host, self.config.listen, self.config.tokens,
                )  # fmt: skip
                self.address = address
                log.info("monitor_listening", url=f"http://{address}/")
                warn_if_open(self.config.listen, self.config.tokens)
                if self.writer is not None:
                    tg.start_soon(history_api.keep_findings, self)  # for /metrics
            while True:
                started = time.perf_counter()
                self.sample(host, time.monotonic(), tg)
                self.record(host)
                self.sample_ms = (time.perf_counter() - started) * 1000
                await anyio.sleep(self.config.interval_s)

    @property
    def sample_interval_s(self) -> float | None:
        return self.config.interval_s

    def rss_mb(self, pid: int) -> float | None:
        """The newest RSS sample of a process (None if not sampled yet)."""
        series = self.series.get(pid)
        return series.latest("rss_mb") if series is not None else None

    # ------------------------------------------------------------ sampling

    def sample(self, host: Host, now: float, tg: anyio.abc.TaskGroup | None = None) -> None:
        workers = host.workers()
        live = {w.pid for w in workers} | {os.getpid()}
        for pid in [p for p in self.series if p not in live]:
            del self.series[pid]
        for key in [k for k in self.alerts if k[1] not in live]:
            del self.alerts[key]
        me = WorkerRef("supervisor", 0, os.getpid(), True, {})
        for worker in (me, *workers):
            s = procstat.sample(worker.pid)
            if s is None:
                continue
            series = self.series.get(worker.pid)
            if series is None:
                series = self.series[worker.pid] = Series(
                    worker.bot, worker.slot, worker.pid, self.config.points
                )
            series.add(now, s, dict(worker.metrics), self.config.trend_window_s)
            if worker is not me:
                self._check_alerts(host, series, now, tg)

    def record(self, host: Host) -> None:
        """This sample, to the history (a put on the writer's queue: never waits)."""
        writer = self.writer
        if writer is None:
            return
        latest = {
            pid: {m: v for m in recorder.SAMPLED if (v := s.latest(m)) is not None}
            for pid, s in self.series.items()
        }
        found = recorder.points(host.status(), latest, self._host_sampler.sample())
        found.append(((FLEET, BOT, "history.dropped"), float(writer.dropped)))
        writer.add_samples(time.time(), found)
        for problem in writer.take_problems():
            log.warning("history_store_problem", problem=problem)
            host.emit("history_store_problem", "warning", problem=problem)

    def _check_alerts(
        self, host: Host, series: Series, now: float, tg: anyio.abc.TaskGroup | None
    ) -> None:
        for rule in self.config.alerts:
            if not rule.applies_to(series.bot):
                continue
            key = (rule.name, series.pid)
            alert, transition = evaluate(
                rule, self.alerts.get(key, Alert()), series.latest(rule.metric), now
            )
            self.alerts[key] = alert
            if transition:
                self._report(host, rule, series, alert, transition=transition, tg=tg)

    def _report(
        self,
        host: Host,
        rule: Rule,
        series: Series,
        alert: Alert,
        *,
        transition: str,
        tg: anyio.abc.TaskGroup | None,
    ) -> None:
        fields = {
            "alert": rule.name,
            "bot": series.bot,
            "worker": series.slot,
            "pid": series.pid,
            "metric": rule.metric,
            "value": alert.value,
            "threshold": rule.above if rule.above is not None else rule.below,
        }
        level = "warning" if transition == "firing" else "info"
        if rule.action is Action.LOG:
            getattr(log, level)(f"alert_{transition}", **fields)
        else:
            host.emit(f"alert_{transition}", level, **fields)
        if self.writer is not None and transition in ("firing", "resolved"):
            self.writer.add_event(time.time(), f"alert_{transition}", series.bot, series.slot,
                                  fields)  # fmt: skip
        if transition == "firing":
            self.fired += 1
            if rule.action is Action.RESTART and tg is not None:
                reason = f"alert {rule.name}: {rule.metric} {alert.value:g}"
                tg.start_soon(host.restart_worker, series.bot, series.slot, reason)

    async def on_event(self, event: str, fields: dict[str, Any]) -> None:
        if self.writer is not None:
            rest = {k: v for k, v in fields.items() if k not in ("bot", "worker")}
            worker = fields.get("worker")
            self.writer.add_event(time.time(), event, str(fields.get("bot", "")),
                                  worker if isinstance(worker, int) else BOT, rest)  # fmt: skip
        if event != "bot_scaled":
            return
        self.scaling.append({"ts": time.time(), **fields})
        bot = str(fields.get("bot"))
        self.scaling_counts[bot] = self.scaling_counts.get(bot, 0) + 1

    # ------------------------------------------------------------ what it shows

    def firing(self, now: float) -> list[dict[str, Any]]:
        out = []
        for (name, pid), alert in self.alerts.items():
            series = self.series.get(pid)
            if alert.state is State.OK or series is None:
                continue
            out.append(
                {
                    "alert": name,
                    "bot": series.bot,
                    "worker": series.slot,
                    "pid": pid,
                    "state": alert.state.value,
                    "since_s": round(now - alert.since, 1),
                    "value": alert.value,
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        return {
            "listen": self.address,
            "connections": self.connections.status(),
            "processes_sampled": len(self.series),
            "sample_ms": round(self.sample_ms, 2),
            "alerts": self.firing(time.monotonic()),
            "alerts_fired": self.fired,
            "history": None
            if self.writer is None
            else {
                "path": str(self.writer.path),
                "rows_written": self.writer.written,
                "dropped": self.writer.dropped,
                "backlog": self.writer.backlog,
            },
        }

    def metrics(self) -> list[Metric]:
        firing: dict[tuple[str, str], float] = {}
        for a in self.firing(time.monotonic()):
            if a["state"] == "firing":
                firing[(a["alert"], a["bot"])] = firing.get((a["alert"], a["bot"]), 0) + 1
        by_rule = tuple(({"alert": k[0], "bot": k[1]}, v) for k, v in firing.items())
        return [
            Metric(
                "supervisor_alerts_firing", "gauge", "Workers for which an alert fires.", by_rule
            ),
            Metric(
                "supervisor_alerts_fired",
                "counter",
                "Alerts that began firing.",
                (({}, self.fired),),
            ),
            Metric(
                "supervisor_monitor_connections_refused",
                "counter",
                "HTTP connections closed because max_connections were open.",
                (({}, self.connections.refused),),
            ),
            *history_api.metrics(self),
        ]


def _address(value: Any) -> str:
    text = string(value) if value != "" else ""
    if text:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
            raise BadValue(f'expected "host:port" such as "127.0.0.1:9321", or "", got "{text}"')
    return text


def _rules(table: Table) -> list[Rule]:
    raw = table.raw.get("alerts", [])
    table.used.add("alerts")
    if not isinstance(raw, list):
        table.problems.append(
            f"{table.key_path('alerts')}: expected [[plugins.monitor.alerts]] tables"
        )
        return []
    rules = []
    for i, item in enumerate(raw):
        t = Table(item, f"{table.key_path('alerts')}[{i}]", table.problems)
        rule = Rule(
            name=t.take("name", string, f"alert{i}"),
            metric=t.take("metric", string, ""),
            bots=t.take("bots", string, "*"),
            above=t.take("above", number(), None),
            below=t.take("below", number(), None),
            for_s=t.take("for_s", duration, 0.0),
            action=t.take("action", enum_choice(Action), Action.EVENT),
        )
        t.finish()
        if not rule.metric:
            table.problems.append(f'{t.path}: needs "metric"')
        if (rule.above is None) == (rule.below is None):
            table.problems.append(f'{t.path}: give one of "above" or "below"')
        rules.append(rule)
    return rules
