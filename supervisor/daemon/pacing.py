"""The fleet's start-up pacing queue: bots ask before they spawn (policy/pacing.py decides).

A bot's reconcile pass asks `take(bot, due)` how many of its `due` workers it may spawn now.
A bot granted fewer joins the queue (keeping its place) and is poked when a place frees: a
worker of any bot became ready, or exited. With no cap anywhere, `take` grants everything at
once, as before pacing existed. A grant counts as starting until the bot says it spawned
(`spawned`): a bot lets the loop breathe between spawns, and another bot asking meanwhile
must not get the same places.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from supervisor.policy import pacing


class Paced(Protocol):
    """What the queue reads of a bot (`fleet.Bot` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def starting(self) -> int: ...
    @property
    def max_starting(self) -> int | None: ...
    def poke(self) -> None: ...


class Pacer:
    def __init__(self, cap: int | None, bots: Callable[[], Iterable[Paced]]) -> None:
        self.cap = cap  # [supervisor] max_starting; None: no fleet-wide cap
        self._bots = bots
        self._queue: dict[str, tuple[Paced, int]] = {}  # in the order they asked
        self._granted: dict[str, int] = {}  # granted, not spawned yet

    def take(self, bot: Paced, due: int) -> int:
        """How many of its due workers the bot may spawn now."""
        if due <= 0 or (self.cap is None and bot.max_starting is None):
            self._queue.pop(bot.name, None)
            return max(0, due)
        self._queue[bot.name] = (bot, due)
        wants = [
            pacing.Want(b.name, n, b.starting + self._granted.get(b.name, 0), b.max_starting)
            for b, n in self._queue.values()
        ]
        granted = pacing.grant(wants, self.starting(), self.cap).get(bot.name, 0)
        self._granted[bot.name] = self._granted.get(bot.name, 0) + granted
        if granted >= due:
            del self._queue[bot.name]
        else:
            self._queue[bot.name] = (bot, due - granted)
        return granted

    def spawned(self, bot: Paced) -> None:
        """The bot's pass spawned what it was granted (its workers now count themselves)."""
        self._granted.pop(bot.name, None)

    def released(self) -> None:
        """A place may have freed: the queued bots ask again, in their order."""
        for bot, _ in list(self._queue.values()):
            bot.poke()

    def forget(self, name: str) -> None:
        self._queue.pop(name, None)
        self._granted.pop(name, None)

    def starting(self) -> int:
        return sum(b.starting for b in self._bots()) + sum(self._granted.values())

    def status(self) -> dict[str, Any]:
        return {
            "max_starting": self.cap,
            "starting": self.starting(),
            "queued": {name: n for name, (_, n) in self._queue.items()},
        }
