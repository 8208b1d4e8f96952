"""The supervisor's side of the plugin interface: the `Host` plugins talk to."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from supervisor.daemon.channel import WorkerLink
from supervisor.daemon.plugin_runner import PluginRunner
from supervisor.errors import CommandError
from supervisor.plugins.base import Metric, WorkerRef
from supervisor.wire import protocol

if TYPE_CHECKING:
    from supervisor.daemon.channel import Channel
    from supervisor.daemon.commands import Commands
    from supervisor.daemon.events import Events
    from supervisor.daemon.fleet import Bot
    from supervisor.plugins.base import Plugin


class Fleet(Protocol):
    """What the host uses of the supervisor (`owner.Supervisor` is one)."""

    bots: dict[str, Bot]
    events: Events
    channel: Channel | None

    def status(self, bot_name: str | None, now: float) -> dict[str, Any]: ...


log = structlog.get_logger("supervisor.plugins")

_KINDS = {
    "config": protocol.CONFIG,
    "warm": protocol.WARM,
    "drain": protocol.DRAIN,
    "stop": protocol.STOP,
}


class SupervisorHost:
    def __init__(self, sup: Fleet) -> None:
        self._sup = sup
        self.commands: Commands | None = None  # the owner's, set once it has them
        self.runners: list[PluginRunner] = []

    def status(self) -> dict[str, Any]:
        return self._sup.status(None, time.monotonic())

    def plugin_statuses(self) -> dict[str, Any]:
        return {r.name: r.status() for r in self.runners}

    def memory_sampler(self) -> Plugin | None:
        """The first plugin that samples workers' memory (`Plugin.rss_mb`), if one runs."""
        for runner in self.runners:
            if runner.plugin.sample_interval_s is not None:
                return runner.plugin
        return None

    def workers(self) -> list[WorkerRef]:
        refs = []
        for bot in self._sup.bots.values():
            for slot in bot.slots.values():
                if slot.alive and slot.child is not None:
                    refs.append(self._ref(bot.name, slot.index, slot.child.pid, slot.link))
        return refs

    def _ref(
        self, bot: str, slot: int, pid: int, link: WorkerLink | None, metrics: bool = True
    ) -> WorkerRef:
        values = link.metrics() if link is not None and metrics else {}
        return WorkerRef(bot, slot, pid, bool(link and link.ready), values)

    def send(self, bot: str, slot: int | None, kind: str, values: Mapping[str, Any] | None) -> int:
        channel, target = self._sup.channel, self._sup.bots.get(bot)
        if channel is None or target is None or kind not in _KINDS:
            return 0
        if kind == "config":
            message = [protocol.CONFIG, dict(values or {})]
        elif kind == "warm":
            message = [protocol.WARM, list((values or {}).get("keys", ()))]
        else:
            message = [_KINDS[kind]]
        sent = 0
        for s in target.slots.values():
            if (slot is None or s.index == slot) and s.alive and s.link is not None:
                sent += channel.send(s.link, [message])
        return sent

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        self._sup.events.emit(event, level, **fields)

    async def restart_worker(self, bot: str, slot: int, reason: str) -> None:
        target = self._sup.bots.get(bot)
        if target is None or slot not in target.slots:
            return
        self.emit("worker_recycled", "warning", bot=bot, worker=slot, reason=reason)
        await target.restart(slot)

    async def command(self, cmd: str, args: Mapping[str, Any]) -> Any:
        if self.commands is None:
            raise CommandError("unavailable", "the supervisor takes no commands yet")
        return await self.commands.dispatch(cmd, dict(args))

    def plugin_metrics(self) -> list[Metric]:
        found: list[Metric] = []
        for runner in self.runners:
            try:
                found += runner.plugin.metrics()
            except Exception:
                log.exception("plugin_metrics_failed", plugin=runner.name)
        return found

    def on_message(self, runner: PluginRunner, link: WorkerLink, message: list[Any]) -> None:
        pid = 0
        bot = self._sup.bots.get(link.bot)
        slot = bot.slots.get(link.slot) if bot else None
        if slot is not None and slot.child is not None:
            pid = slot.child.pid
        runner.on_message(self._ref(link.bot, link.slot, pid, link, metrics=False), message)
