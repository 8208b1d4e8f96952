"""Which of a bot's slots to start and which to stop, for a target count (pure).

The fleet's loop calls `to_spawn`, starts what it names, then calls `to_trim` and stops what
that names; it reads the clock and passes `now`. Slots are numbered from 0. `kept` is the set
of slot numbers the bot keeps for its desired count (policy/victims.py chooses it: the idlest
leave on scale-down, so it may have holes); `wanted` is the part that should run now (all of
`kept`, or none while the bot is stopped):

    to_spawn   wanted slots with no process whose restart delay is over (a slot not seen yet
               is new, due at once), lowest first; none while the bot is blocked (failed or
               shutting down)
    next_due   seconds until the earliest slot `to_spawn` would name becomes due: 0 if one is
               due already (it became due while the pass ran), inf if none will
    to_trim    stop: live slots not wanted, highest first (unless already stopping); forget:
               empty slots not kept (nothing left to keep)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol


class SlotView(Protocol):
    """What the plan reads of a slot (`daemon.slots.Slot` is one)."""

    @property
    def index(self) -> int: ...
    @property
    def alive(self) -> bool: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def spawning(self) -> bool: ...
    @property
    def held(self) -> bool: ...
    @property
    def restart_at(self) -> float | None: ...


@dataclass(frozen=True)
class Trim:
    stop: tuple[int, ...] = ()
    forget: tuple[int, ...] = ()


def to_spawn(
    slots: Mapping[int, SlotView], wanted: Collection[int], now: float, blocked: bool = False
) -> list[int]:
    """Slots to start now, lowest first; indexes not in `slots` are new slots."""
    if blocked:
        return []
    return [i for i in sorted(wanted) if i not in slots or _due(slots[i], now)]


def next_due(
    slots: Mapping[int, SlotView], wanted: Collection[int], now: float, blocked: bool = False
) -> float:
    """Seconds until `to_spawn` names a slot it does not name at `now` (0: one is due now).

    A slot whose delay ends while a pass runs (a pass spawns, and the machine may be slow) is
    due by the time the pass looks for its next wake-up: it must give 0, not be left out, or
    the bot sleeps until something else pokes it (after a storm, nothing did).
    """
    if blocked:
        return float("inf")
    waits = [
        max(0.0, s.restart_at - now)
        for i, s in slots.items()
        if i in wanted and s.restart_at is not None and _may_spawn(s)
    ]
    return min(waits, default=float("inf"))


def to_trim(slots: Mapping[int, SlotView], wanted: Collection[int], kept: Collection[int]) -> Trim:
    """Live slots not wanted to stop (highest first), and empty ones not kept to forget."""
    stop, forget = [], []
    for slot in sorted(slots.values(), key=lambda s: -s.index):
        if slot.index in wanted:
            continue
        if slot.alive and not slot.stopping:
            stop.append(slot.index)
        elif not (slot.alive or slot.stopping or slot.spawning) and slot.index not in kept:
            forget.append(slot.index)
    return Trim(tuple(stop), tuple(forget))


def _due(slot: SlotView, now: float) -> bool:
    return _may_spawn(slot) and slot.restart_at is not None and slot.restart_at <= now


def _may_spawn(slot: SlotView) -> bool:
    return not (slot.held or slot.stopping or slot.spawning or slot.alive)
