"""Start-up pacing: how many workers each bot may start now (pure).

A worker is *starting* from its spawn until it is ready. `max_starting` caps how many are
starting at once, fleet-wide (`[supervisor] max_starting`) and per bot (`[bots.NAME]
max_starting`), so a fleet of 200 comes up in waves that keep the machine and the services
it shares (a database, an API, Redis) responsive. Everything that starts workers goes
through it: start-up, scale-up, restarts (also the burst when a `needs` service comes
back) and rolling restarts.

    grant(wants, fleet_starting, fleet_cap)

`wants` is the queue of bots with workers due to start, in the order they asked (the
fleet's start order at start-up). The free fleet places are handed out one at a time,
round-robin over the queue, so one big bot cannot starve a small one; a bot never gets
more than its own cap leaves it, nor more than it wants. None as a cap: no limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Want:
    bot: str
    due: int  # workers ready to be spawned now
    starting: int  # its workers spawned and not ready yet
    cap: int | None = None  # its own max_starting


def grant(wants: Sequence[Want], fleet_starting: int, fleet_cap: int | None) -> dict[str, int]:
    """Workers each bot may spawn now (bots granted none are absent)."""
    free = None if fleet_cap is None else max(0, fleet_cap - fleet_starting)
    room = {w.bot: _room(w) for w in wants}
    granted: dict[str, int] = {}
    while free is None or free > 0:
        progress = False
        for w in wants:
            if room[w.bot] > 0 and (free is None or free > 0):
                room[w.bot] -= 1
                granted[w.bot] = granted.get(w.bot, 0) + 1
                free = None if free is None else free - 1
                progress = True
        if not progress:
            break
    return granted


def _room(w: Want) -> int:
    own = w.due if w.cap is None else min(w.due, max(0, w.cap - w.starting))
    return max(0, own)
