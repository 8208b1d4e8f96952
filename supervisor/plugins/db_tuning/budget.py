"""The fleet's PostgreSQL connection budget, as pure arithmetic (no I/O, no clock).

    budget  = min(cap, max_connections - superuser_reserved - reserve - others - own)
    targets = allocate(budget, workers)          # how many each worker should have
    ledger.plan(budget, targets, observed)       # what to send now, shrinks first

The ledger is what keeps the sum under the budget while the fleet changes.
For each worker it holds `limit`, the most connections the worker may have
open right now. A grant that raises a worker's pool raises its limit at
once (before the worker hears of it); a grant that lowers it lowers the
limit only when the worker confirms that it has closed what was above
(its ACK). Growth is granted only from room that is free in the ledger
and on the server alike: each worker counts with the larger of its limit
and the backends PostgreSQL shows for it, so a new worker never opens a
connection before the old ones that made room for it are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Key = tuple[str, int, int]  # (bot, slot, pid): a restarted slot is a new worker


@dataclass(frozen=True, slots=True)
class Server:
    """What PostgreSQL said about itself."""

    max_connections: int
    superuser_reserved: int
    others: int  # client connections of other applications
    own: int = 1  # the plugin's own connection


def fleet_budget(server: Server, reserve: int, cap: int | None) -> int:
    """Connections the fleet's workers may hold together (never below 0)."""
    free = server.max_connections - server.superuser_reserved - reserve
    free -= server.others + server.own
    return max(0, free if cap is None else min(cap, free))


@dataclass(frozen=True, slots=True)
class Demand:
    """One worker that asked for a pool, with what it needs.

    `need` is the connections it would use (in use + waiting, smoothed); None
    when it has not reported yet, or when tuning is off.
    """

    key: Key
    weight: float = 1.0
    max_size: int = 10  # the preset's (or the bot's override) per-worker ceiling
    need: float | None = None


def allocate(budget: int, workers: Sequence[Demand], held: Mapping[Key, int]) -> dict[Key, int]:
    """Each worker's target pool size; the targets add up to at most `budget`.

    First one connection each, to the workers that already hold one before the
    newcomers (a worker is never taken to 0 to let a newer one start); then the
    rest one at a time, by the largest weight * need / (size + 1) (D'Hondt),
    to workers below their need; then what is left, by weight, up to max_size.
    """
    order = sorted(workers, key=lambda d: (held.get(d.key, 0) == 0, d.key))
    sizes = {d.key: 0 for d in workers}
    left = budget
    for d in order:
        if left > 0 and d.max_size > 0:
            sizes[d.key], left = 1, left - 1
    left = _share(left, order, sizes, lambda d: d.need)
    _share(left, order, sizes, lambda d: None)
    return sizes


_NeedOf = Callable[[Demand], float | None]


def _share(left: int, order: Sequence[Demand], sizes: dict[Key, int], need_of: _NeedOf) -> int:
    while left > 0:
        best, best_score = None, 0.0
        for d in order:
            need = need_of(d)
            ceiling = d.max_size if need is None else min(d.max_size, _ceil(need))
            if sizes[d.key] == 0 or sizes[d.key] >= ceiling:
                continue
            score = d.weight * (need if need is not None else 1.0) / (sizes[d.key] + 1)
            if score > best_score:
                best, best_score = d, score
        if best is None:
            return left
        sizes[best.key] += 1
        left -= 1
    return left


def _ceil(x: float) -> int:
    return int(-(-x // 1))


@dataclass(slots=True)
class Held:
    """The ledger's line for one worker."""

    limit: int = 0  # most connections it may have open now
    granted: int = 0  # last size sent
    generation: int = 0  # of the last grant; its ACK carries it back
    confirmed: bool = True  # the worker has applied `granted`


@dataclass(frozen=True, slots=True)
class Grant:
    key: Key
    size: int
    previous: int
    generation: int


@dataclass(frozen=True, slots=True)
class Plan:
    shrink: tuple[Grant, ...]  # send these first
    grow: tuple[Grant, ...]  # these fit in the room that is free now
    waiting: tuple[Key, ...]  # want more, but wait for confirmations (or the server)


@dataclass
class Ledger:
    """Grants in flight and confirmed; see the module docstring."""

    lines: dict[Key, Held] = field(default_factory=dict)
    generation: int = 0

    def total(self) -> int:
        return sum(h.limit for h in self.lines.values())

    def held(self) -> dict[Key, int]:
        return {k: h.granted for k, h in self.lines.items()}

    def adopt(self, key: Key, held: int, generation: int) -> None:
        """A worker that holds `held` under an earlier ledger (this one was started
        anew): count it as granted and confirmed, and number new grants after its own."""
        self.generation = max(self.generation, generation)
        if key not in self.lines and held > 0:
            self.lines[key] = Held(limit=held, granted=held, generation=generation)

    def forget(self, key: Key) -> None:
        """The worker exited: its connections are closed (the server check covers the lag)."""
        self.lines.pop(key, None)

    def confirm(self, key: Key, generation: int, open_connections: int) -> bool:
        """The worker applied grant `generation` and holds `open_connections`."""
        line = self.lines.get(key)
        if line is None or generation != line.generation or open_connections > line.granted:
            return False
        line.limit, line.confirmed = line.granted, True
        return True

    def occupied(self, observed: Mapping[tuple[str, int], int]) -> int:
        """Connections that may be open: per worker the larger of its limit and what the
        server shows for it (a closed connection's backend can linger a moment), plus
        the fleet's backends that belong to no worker in the ledger (one that exited)."""
        seen = dict(observed)
        total = 0
        for (bot, slot, _), line in self.lines.items():
            total += max(line.limit, seen.pop((bot, slot), 0))
        return total + sum(seen.values())

    def plan(
        self,
        budget: int,
        targets: Mapping[Key, int],
        observed: Mapping[tuple[str, int], int] | None,
    ) -> Plan:
        """Shrinks to send now, and the growth that fits; updates the ledger as if sent.

        `observed` counts the fleet's backends on the server by (bot, slot),
        read after the latest confirmations arrived; None (unknown, e.g. the
        server is down) lets nothing grow.
        """
        shrink, grow, waiting = [], [], []
        for key, size in sorted(targets.items()):
            line = self.lines.setdefault(key, Held())
            if size < line.granted:
                shrink.append(self._send(key, line, size, lower=True))
        room = 0 if observed is None else budget - self.occupied(observed)
        for key, size in sorted(targets.items(), key=lambda kv: (self.lines[kv[0]].granted, kv)):
            line = self.lines[key]
            if size <= line.granted:
                continue
            step = min(size - line.granted, room)
            if step > 0:
                grow.append(self._send(key, line, line.granted + step, lower=False))
                room -= step
            if line.granted < size:
                waiting.append(key)
        return Plan(tuple(shrink), tuple(grow), tuple(waiting))

    def resend(self) -> list[Grant]:
        """Every current grant again, e.g. after PostgreSQL came back."""
        return [Grant(k, h.granted, h.granted, h.generation) for k, h in self.lines.items()]

    def _send(self, key: Key, line: Held, size: int, *, lower: bool) -> Grant:
        self.generation += 1
        grant = Grant(key, size, line.granted, self.generation)
        line.granted, line.generation, line.confirmed = size, self.generation, False
        if not lower:
            line.limit = max(line.limit, size)
        return grant
