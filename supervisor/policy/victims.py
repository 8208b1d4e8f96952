"""Which worker slots a bot keeps, and which go first when it scales down (pure).

A bot keeps a set of slot numbers, sized to its desired count. Scale-up fills the lowest
free numbers, so a hole left by an earlier scale-down is filled first. Scale-down removes
the idlest workers, not the highest slots:

    1. slots with no live process (backoff, exited, failed: nothing to lose), then workers
       not ready yet (starting: they hold no work)
    2. the least work held: the SDK's `busy` gauge (`w.busy(n)`), else its `inflight` gauge
       (a worker without either counts as 0 here)
    3. the least CPU over the last sampling window
    4. the highest slot number (today's order, for ties)

Slots are not renumbered: a worker's number is in its environment (SUPERVISOR_WORKER, PORT),
so renumbering would mean restarting it. The holes stay until a scale-up fills them;
`status` lists the slots that exist, so a hole is a number missing from the list.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

BUSY = "busy"  # the SDK's gauge for work held (w.busy(n))
INFLIGHT = "inflight"  # a bot's own in-flight gauge, read when it reports no busy


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the choice reads of a kept slot."""

    index: int
    alive: bool = True
    ready: bool = True
    busy: float | None = None  # work it says it holds; None: it reports none
    cpu_percent: float | None = None


def busy_of(metrics: Mapping[str, float]) -> float | None:
    """The work a worker reports holding: `busy`, else `inflight`, else None."""
    for name in (BUSY, INFLIGHT):
        if name in metrics:
            return metrics[name]
    return None


def choose(candidates: Sequence[Candidate], count: int) -> tuple[int, ...]:
    """The `count` slots to stop, idlest first."""
    return tuple(c.index for c in sorted(candidates, key=_idleness)[: max(0, count)])


def _idleness(c: Candidate) -> tuple[bool, bool, float, float, int]:
    return (c.alive, c.ready, c.busy or 0.0, c.cpu_percent or 0.0, -c.index)


def resize(
    kept: Collection[int], desired: int, candidates: Mapping[int, Candidate]
) -> tuple[int, ...]:
    """The slot numbers to keep for `desired` workers, in order. A kept slot missing from
    `candidates` has no process."""
    have = set(kept)
    if len(have) < desired:
        free = (i for i in itertools.count() if i not in have)
        have.update(itertools.islice(free, desired - len(have)))
    elif len(have) > desired:
        views = [candidates.get(i, Candidate(i, alive=False, ready=False)) for i in have]
        have.difference_update(choose(views, len(have) - desired))
    return tuple(sorted(have))
