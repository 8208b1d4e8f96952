"""Which of a bot's slots to start and which to stop, for a target count (pure).

The fleet's loop calls `to_spawn`, starts what it names, then calls `to_trim` and stops what
that names; it reads the clock and passes `now`. Slots are numbered from 0, so a bot at
target N keeps slots 0..N-1 and scales down from the top:

    to_spawn   slots below the target with no process whose restart delay is over (a slot
               not seen yet is new, due at once), lowest first; none while the bot is blocked
               (failed or shutting down)
    to_trim    stop: live slots at or above the target, highest first (unless already
               stopping); forget: empty slots at or above `desired` (nothing left to keep)
"""

from __future__ import annotations

from collections.abc import Mapping
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
    slots: Mapping[int, SlotView], target: int, now: float, blocked: bool = False
) -> list[int]:
    """Slots to start now, lowest first; indexes not in `slots` are new slots."""
    if blocked:
        return []
    return [i for i in range(target) if i not in slots or _due(slots[i], now)]


def to_trim(slots: Mapping[int, SlotView], target: int, desired: int) -> Trim:
    """Slots above the target to stop (highest first), and empty ones to forget."""
    stop, forget = [], []
    for slot in sorted(slots.values(), key=lambda s: -s.index):
        if slot.index < target:
            continue
        if slot.alive and not slot.stopping:
            stop.append(slot.index)
        elif not (slot.alive or slot.stopping or slot.spawning) and slot.index >= desired:
            forget.append(slot.index)
    return Trim(tuple(stop), tuple(forget))


def _due(slot: SlotView, now: float) -> bool:
    return (
        not (slot.held or slot.stopping or slot.spawning or slot.alive)
        and slot.restart_at is not None
        and slot.restart_at <= now
    )
