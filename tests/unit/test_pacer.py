"""The pacing queue's bookkeeping: grants count as starting until spawned, queued bots are
poked when a place frees, and no cap means no queue."""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.daemon.pacing import Pacer


@dataclass
class FakeBot:
    name: str
    starting: int = 0
    max_starting: int | None = None
    pokes: int = 0

    def poke(self) -> None:
        self.pokes += 1


def test_a_grant_is_held_until_spawned() -> None:
    """A bot that breathes between spawns keeps its places: another bot asking meanwhile gets
    none of them (the 20 + 2 overshoot this once allowed)."""
    a, b = FakeBot("a"), FakeBot("b", max_starting=3)
    pacer = Pacer(20, lambda: [a, b])
    assert pacer.take(a, 200) == 20
    assert pacer.take(b, 10) == 0  # a has spawned none of its 20 yet
    a.starting = 16  # part-way through its spawns
    assert pacer.take(b, 10) == 0
    pacer.spawned(a)
    a.starting = 20
    assert pacer.starting() == 20
    assert pacer.status()["queued"] == {"a": 180, "b": 10}


def test_a_place_freed_pokes_the_queue_and_is_shared() -> None:
    """When workers become ready the queued bots are poked, and the free places go round-robin
    within each bot's own cap."""
    a, b = FakeBot("a", starting=15), FakeBot("b", max_starting=3)
    pacer = Pacer(20, lambda: [a, b])
    assert pacer.take(a, 180) == 5
    pacer.spawned(a)
    a.starting = 20
    assert pacer.take(b, 10) == 0
    a.starting = 15  # five became ready
    pacer.released()
    assert (a.pokes, b.pokes) == (1, 1)
    assert pacer.take(b, 10) == 2  # round-robin: a, b, a, b, a
    # 3 places left: b (queued, 1 below its cap) keeps its turn in the round: a, b, a
    assert pacer.take(a, 175) == 2


def test_no_cap_grants_everything_and_queues_nothing() -> None:
    """Without max_starting anywhere, every due worker starts at once, as before pacing."""
    a = FakeBot("a")
    pacer = Pacer(None, lambda: [a])
    assert pacer.take(a, 500) == 500
    assert pacer.status() == {"max_starting": None, "starting": 0, "queued": {}}
