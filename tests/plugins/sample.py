"""Plugins for the tests: one that crashes, one whose hook hangs, one that sends config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio

from supervisor.fields import Table, duration, string
from supervisor.plugins.base import Host, Metric, Plugin


@dataclass(frozen=True)
class CrashyConfig:
    fail_after_s: float


class Crashy(Plugin):
    """Raises a while after each start."""

    name = "crashy"
    runs = 0

    @classmethod
    def configure(cls, table: Table) -> CrashyConfig:
        config = CrashyConfig(fail_after_s=table.take("fail_after_s", duration, 0.2))
        table.finish()
        return config

    async def run(self, host: Host) -> None:
        Crashy.runs += 1
        await anyio.sleep(self.config.fail_after_s)
        raise RuntimeError(f"boom {Crashy.runs}")

    def status(self) -> dict[str, Any]:
        return {"runs": Crashy.runs}


class Stuck(Plugin):
    """Its event hook never returns; it must be cut off, and the loop must go on."""

    name = "stuck"
    subscribe = frozenset({"*"})
    seen = 0

    async def on_event(self, event: str, fields: dict[str, Any]) -> None:
        Stuck.seen += 1
        await anyio.sleep_forever()

    def status(self) -> dict[str, Any]:
        return {"seen": Stuck.seen}


@dataclass(frozen=True)
class PusherConfig:
    bot: str


class Pusher(Plugin):
    """Pushes a config value to every worker of a bot, and publishes a metric."""

    name = "pusher"

    @classmethod
    def configure(cls, table: Table) -> PusherConfig:
        config = PusherConfig(bot=table.take("bot", string, ""))
        table.finish()
        return config

    async def run(self, host: Host) -> None:
        while True:
            host.send(self.config.bot, None, "config", {"colour": "green"})
            await anyio.sleep(0.2)

    def metrics(self) -> list[Metric]:
        return [
            Metric("pusher_pushes", "counter", "pushes done", (({"bot": self.config.bot}, 1.0),))
        ]
