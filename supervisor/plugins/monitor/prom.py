"""/metrics in the Prometheus exposition format, written by prometheus_client.

Conventional names, under `supervisor_`, with `bot` (and `worker`, the slot)
labels; the supervisor's own process metrics (`process_*`) come from
prometheus_client's ProcessCollector. Counters get `_total` from the library.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisor.plugins.base import Host

if TYPE_CHECKING:
    from supervisor.plugins.monitor.view import MonitorView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The monitor fits RSS in MiB per hour (its alert rules and dashboard speak that); Prometheus
# wants base units.
_MIB_PER_HOUR_IN_BYTES_PER_S = 2**20 / 3600


def exposition(monitor: MonitorView, host: Host) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(monitor, host))
    ProcessCollector(registry=registry)
    return generate_latest(registry)


class FleetCollector(Collector):
    def __init__(self, monitor: MonitorView, host: Host) -> None:
        self.monitor = monitor
        self.host = host

    def collect(self) -> Iterator[Metric]:
        status = self.host.status()
        yield from _bots(status["bots"])
        yield from _cgroups(status["bots"])
        yield from self._workers(status["bots"])
        yield from _ipc(status["supervisor"])
        yield from _plugins(status["plugins"], self.monitor)
        for m in self.host.plugin_metrics():
            family = GaugeMetricFamily if m.kind == "gauge" else CounterMetricFamily
            labels = sorted({k for sample_labels, _ in m.samples for k in sample_labels})
            f = family(m.name, m.help, labels=labels)
            for sample_labels, value in m.samples:
                f.add_metric([sample_labels.get(k, "") for k in labels], value)
            yield f

    def _workers(self, bots: dict[str, Any]) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "supervisor_worker_cpu_seconds", "CPU time of a worker.", labels=["bot", "worker"]
        )
        rss = GaugeMetricFamily(
            "supervisor_worker_resident_memory_bytes", "Resident memory.", labels=["bot", "worker"]
        )
        threads = GaugeMetricFamily(
            "supervisor_worker_threads", "Threads.", labels=["bot", "worker"]
        )
        fds = GaugeMetricFamily(
            "supervisor_worker_open_fds", "Open file descriptors.", labels=["bot", "worker"]
        )
        growth = GaugeMetricFamily(
            "supervisor_worker_memory_growth_bytes_per_second",
            "Fitted RSS growth (least squares over trend_window_s).",
            labels=["bot", "worker"],
        )
        reported = GaugeMetricFamily(
            "supervisor_worker_metric",
            "A metric the worker reports.",
            labels=["bot", "worker", "name"],
        )
        by_pid = self.monitor.series
        for name, bot in bots.items():
            for w in bot["workers"]:
                if w["pid"] is None:
                    continue
                labels = [name, str(w["slot"])]
                for metric, value in w["metrics"].items():
                    reported.add_metric([*labels, metric], float(value))
                series = by_pid.get(w["pid"])
                if series is None:
                    continue
                last = series.last_sample
                if last is not None:
                    cpu.add_metric(labels, last.cpu_s)
                    rss.add_metric(labels, last.rss_bytes)
                    threads.add_metric(labels, last.threads)
                    fds.add_metric(labels, last.fds)
                rate = series.latest("rss_growth_mb_per_h")
                if rate is not None:
                    growth.add_metric(labels, rate * _MIB_PER_HOUR_IN_BYTES_PER_S)
        yield from (cpu, rss, threads, fds, growth, reported)


def _bots(bots: dict[str, Any]) -> Iterator[Metric]:
    by_state = GaugeMetricFamily(
        "supervisor_workers", "Workers by bot and state.", labels=["bot", "state"]
    )
    desired = GaugeMetricFamily(
        "supervisor_bot_desired_workers", "Desired workers.", labels=["bot"]
    )
    ready = GaugeMetricFamily("supervisor_bot_ready_workers", "Ready workers.", labels=["bot"])
    running = GaugeMetricFamily(
        "supervisor_bot_running_workers", "Running workers.", labels=["bot"]
    )
    restarts = CounterMetricFamily("supervisor_worker_restarts", "Worker restarts.", labels=["bot"])
    up = GaugeMetricFamily("supervisor_bot_up", "1 if the bot runs as desired.", labels=["bot"])
    for name, bot in bots.items():
        counts: dict[str, int] = {}
        for w in bot["workers"]:
            counts[w["state"]] = counts.get(w["state"], 0) + 1
        for state, n in sorted(counts.items()):
            by_state.add_metric([name, state], n)
        desired.add_metric([name], bot["desired"])
        ready.add_metric([name], bot["ready"])
        running.add_metric([name], bot["running"])
        restarts.add_metric([name], bot["restarts"])
        up.add_metric([name], 1.0 if bot["state"] == "running" else 0.0)
    yield from (by_state, desired, ready, running, restarts, up)


# status key -> (metric, help, counter?) of a bot's or a worker's cgroup usage
_CGROUP_METRICS = {
    "cpu_usage_s": ("supervisor_cgroup_cpu_seconds", "CPU time of the group.", True),
    "cpu_throttled_s": ("supervisor_cgroup_cpu_throttled_seconds", "Time throttled.", True),
    "memory_bytes": ("supervisor_cgroup_memory_bytes", "Memory charged (with cache).", False),
    "memory_cache_bytes": ("supervisor_cgroup_memory_cache_bytes", "Page cache.", False),
    "memory_swap_bytes": ("supervisor_cgroup_memory_swap_bytes", "Swap used.", False),
    "pids": ("supervisor_cgroup_pids", "Processes and threads in the group.", False),
    "oom_kills": ("supervisor_cgroup_oom_kills", "Processes the kernel OOM-killed.", True),
    "memory_pressure_some_avg10": (
        "supervisor_cgroup_memory_pressure_some_avg10",
        "Memory PSI (some), 10 s average.",
        False,
    ),
    "cpu_pressure_some_avg10": (
        "supervisor_cgroup_cpu_pressure_some_avg10",
        "CPU PSI (some), 10 s average.",
        False,
    ),
}


def _cgroups(bots: dict[str, Any]) -> Iterator[Metric]:
    """Usage read from each bot's cgroup (worker "" is the bot's group, else a worker's own)."""
    families = {
        key: (CounterMetricFamily if counter else GaugeMetricFamily)(
            name, text, labels=["bot", "worker"]
        )
        for key, (name, text, counter) in _CGROUP_METRICS.items()
    }
    limit = GaugeMetricFamily(
        "supervisor_cgroup_limit", "A limit in force.", labels=["bot", "limit"]
    )
    for name, bot in bots.items():
        res = bot.get("resources")
        if not res:
            continue
        groups = [("", res.get("usage") or {})]
        groups += [(str(w["slot"]), w["cgroup"]) for w in bot["workers"] if w.get("cgroup")]
        for worker, usage in groups:
            for key, value in usage.items():
                if key in families:
                    families[key].add_metric([name, worker], float(value))
        in_force = {f.split()[0] for f in res.get("in_force", [])}
        for key, value in res.get("limits", {}).items():
            if key in in_force:
                limit.add_metric([name, key], float(value))
    yield from (*families.values(), limit)


def _ipc(header: dict[str, Any]) -> Iterator[Metric]:
    workers = header.get("workers", {})
    messages = CounterMetricFamily("supervisor_ipc_messages", "Messages received from workers.")
    messages.add_metric([], workers.get("messages", 0))
    batches = CounterMetricFamily("supervisor_ipc_batches", "Batches received from workers.")
    batches.add_metric([], workers.get("batches", 0))
    rejected = CounterMetricFamily(
        "supervisor_ipc_rejected", "Frames dropped.", labels=["socket", "reason"]
    )
    for reason, n in workers.get("rejected", {}).items():
        rejected.add_metric(["workers", reason], n)
    for reason, n in header.get("control", {}).get("rejected", {}).items():
        rejected.add_metric([reason, "bad_request"], n)
    lag = GaugeMetricFamily("supervisor_loop_lag_seconds", "Recent event-loop lag.")
    lag.add_metric([], header.get("loop_lag_s", 0.0))
    yield from (messages, batches, rejected, lag)


def _plugins(plugins: dict[str, Any], monitor: MonitorView) -> Iterator[Metric]:
    up = GaugeMetricFamily("supervisor_plugin_up", "1 while the plugin runs.", labels=["plugin"])
    restarts = CounterMetricFamily(
        "supervisor_plugin_restarts", "Plugin restarts.", labels=["plugin"]
    )
    for name, p in plugins.items():
        up.add_metric([name], 1.0 if p.get("state") == "running" else 0.0)
        restarts.add_metric([name], p.get("restarts", 0))
    decisions = CounterMetricFamily(
        "supervisor_scaling_decisions", "Changes of a bot's count.", labels=["bot"]
    )
    for bot, n in sorted(monitor.scaling_counts.items()):
        decisions.add_metric([bot], n)
    yield from (up, restarts, decisions)
