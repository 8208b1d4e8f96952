"""A bot's probes wired to its slots: readiness gates `ready`, liveness restarts.

The fleet calls four hooks: `start` when a worker spawns, `stop` when it
exits, `admits_ready` when anything would mark it ready (the SDK's READY or
the `ready_after_s` timer), and `status` for `supervisor status`. With a
readiness probe a worker is ready when the probe says so and, if the bot has
readiness = "sdk", the SDK has said READY too. A liveness (or startup) probe
at its failure threshold emits `worker_unhealthy` and has the worker killed;
its exit then takes the bot's normal restart path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio.abc

from supervisor.config.model import BotConfig, Readiness
from supervisor.config.probes import ProbeSpec
from supervisor.daemon.channel import WorkerLink
from supervisor.daemon.events import Events
from supervisor.daemon.probes import ProbeView, Where, WorkerProbes
from supervisor.daemon.process import Child, Reaper
from supervisor.daemon.slots import Slot
from supervisor.policy import probe
from supervisor.policy.probe import Kind

Condemn = Callable[[Slot, Child, str], None]


class BotProbes:
    """The live probes of one bot's workers, by slot."""

    def __init__(
        self, reaper: Reaper, events: Events, tg: anyio.abc.TaskGroup, condemn: Condemn
    ) -> None:
        self._reaper = reaper
        self._events = events
        self._tg = tg
        self._condemn = condemn
        self._running: dict[int, WorkerProbes] = {}

    def start(self, spec: BotConfig, slot: Slot, child: Child, env: dict[str, str]) -> None:
        """A worker spawned: start its probes (if the bot has any)."""
        self.stop(slot)
        specs = spec.probes.all()
        if not specs:
            return
        where = Where(slot.index, spec.port, env, spec.cwd, self._reaper)
        changed = lambda p, v: self._changed(spec, slot, child, p, v)  # noqa: E731
        probes = WorkerProbes(specs, where, changed)
        self._running[slot.index] = probes
        self._tg.start_soon(probes.run)

    def stop(self, slot: Slot) -> None:
        """The worker exited (or is replaced): its probes end."""
        probes = self._running.pop(slot.index, None)
        if probes is not None:
            probes.cancel()

    def admits_ready(self, spec: BotConfig, slot: Slot, link: WorkerLink) -> bool:
        """May the worker count as ready? If not, its readiness is taken back."""
        probes = self._running.get(slot.index)
        if spec.probes.readiness is None or probes is None:
            return True
        probes.sdk_ready = probes.sdk_ready or link.said_hello
        if probes.ready and (spec.readiness is not Readiness.SDK or probes.sdk_ready):
            return True
        link.ready, link.ready_at = False, None
        return False

    def status(self, slot: Slot) -> dict[str, Any]:
        probes = self._running.get(slot.index)
        if probes is None:
            return {}
        return {kind.value: view.as_status() for kind, view in probes.views.items()}

    def _changed(
        self, spec: BotConfig, slot: Slot, child: Child, p: ProbeSpec, view: ProbeView
    ) -> None:
        fields: dict[str, Any] = {
            "bot": spec.name,
            "worker": slot.index,
            "pid": child.pid,
            "probe": p.kind.value,
        }
        if view.last_result == "success":
            self._events.emit("probe_passed", **fields)
        else:
            self._events.emit("probe_failed", "warning", **fields, output=view.output)
        if p.kind is Kind.READINESS:
            self._readiness_changed(spec, slot, view.state.healthy)
        elif probe.wants_restart(p.kind, p.thresholds, view.state) and child.alive:
            self._events.emit("worker_unhealthy", "warning", **fields, output=view.output)
            self._condemn(slot, child, f"{p.kind.value} probe failed: {view.output}")

    def _readiness_changed(self, spec: BotConfig, slot: Slot, healthy: bool) -> None:
        link = slot.link
        if link is None:
            return
        if healthy:
            link.mark_ready(time.monotonic())  # admits_ready has the last word (the SDK's part)
        else:
            link.ready, link.ready_at = False, None
