"""Bots and workers stopped by hand, kept across a supervisor restart until `start`.

`supervisor stop BOT [--worker N]` is an operator's decision, like a scale pin: a restarted
supervisor (a deploy, a reboot, a crash) must not bring back what was stopped on purpose.
The commands record here what they stopped and started; the state file saves it with the
pins; at start-up the supervisor marks each restored bot stopped and each restored worker
held before the bot's first reconcile pass, so nothing of theirs is spawned even briefly.
A shutdown stops every bot too, but that is not recorded: it is no operator's `stop`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.daemon.fleet import Bot
from supervisor.daemon.slots import Slot


@dataclass
class Stops:
    bots: set[str] = field(default_factory=set)
    workers: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def restored(cls, stopped: list[str], held: dict[str, list[int]], names: set[str]) -> Stops:
        """What the state file had, for the bots the config still names."""
        return cls(
            {b for b in stopped if b in names},
            {b: set(w) for b, w in held.items() if b in names and w},
        )

    def stopped(self, bot: str, worker: int | None) -> None:
        if worker is None:
            self.bots.add(bot)
        else:
            self.workers.setdefault(bot, set()).add(worker)

    def started(self, bot: str, worker: int | None) -> None:
        """`start` (or `restart`) clears the stop: of the bot and all its workers, or one."""
        if worker is None:
            self.bots.discard(bot)
            self.workers.pop(bot, None)
        else:
            self.workers.get(bot, set()).discard(worker)

    def forget(self, bot: str) -> None:
        """The bot left the config (a reload)."""
        self.started(bot, None)

    def apply(self, bot: Bot) -> None:
        """Before the bot's first pass: it starts stopped, or with its held workers down."""
        if bot.name in self.bots:
            bot.stopped = True
        for index in self.workers.get(bot.name, ()):
            bot.slots[index] = Slot(index, held=True, restart_at=None)

    def saved(self) -> tuple[list[str], dict[str, list[int]]]:
        return sorted(self.bots), {b: sorted(w) for b, w in self.workers.items() if w}
