"""Restart propagation along `depends_on`: OTP's rest_for_one, with our dependency graph.

A bot restarts when every one of its desired workers has been replaced since its last full
set (the `restart` command, a rolling restart, or a storm that replaced them all). Then
each bot that depends on it and says `on_dependency_restart = "restart"` is restarted once
the restarted bot is ready again; their own dependents follow in turn, so restarts run in
`depends_on` order. The config rejects cycles, so this never loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import anyio

from supervisor.config.model import BotConfig
from supervisor.daemon.events import Events


class Bot(Protocol):
    """What propagation reads of a bot (`daemon.fleet.Bot` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> BotConfig: ...
    @property
    def dependents(self) -> Sequence[Bot]: ...
    @property
    def up(self) -> bool: ...
    @property
    def stopped(self) -> bool: ...
    @property
    def halted(self) -> bool: ...
    async def restart(self, worker: int | None = None) -> None: ...


_READY_POLL_S = 0.05


def followers(bot: Bot) -> list[Bot]:
    """The bots to restart after this one, in start order."""
    return [
        d
        for d in bot.dependents
        if d.spec.on_dependency_restart == "restart" and not (d.stopped or d.halted)
    ]


async def restart_followers(bot: Bot, events: Events) -> None:
    """Wait (bounded) for the restarted bot to be ready, then restart its followers."""
    todo = followers(bot)
    if not todo or not await _wait_up(bot):
        return
    for follower in todo:
        events.emit("restart_propagated", bot=follower.name, depends_on=bot.name)
        await follower.restart()


async def _wait_up(bot: Bot) -> bool:
    limit_s = (bot.spec.ready_timeout_s or 60.0) + bot.spec.ready_after_s + 10.0
    with anyio.move_on_after(limit_s):
        while True:
            if bot.up:
                return True
            if bot.halted or bot.stopped:
                return False
            await anyio.sleep(_READY_POLL_S)
    return False
