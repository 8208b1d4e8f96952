"""The connection budget: arithmetic, allocation and the shrink-first ledger, as tables."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.plugins.db_tuning.budget import Demand, Key, Ledger, Server, allocate, fleet_budget


def k(bot: str, slot: int) -> Key:
    return (bot, slot, 1000 + slot)


@pytest.mark.parametrize(
    ("server", "reserve", "cap", "budget"),
    [
        (Server(100, 3, others=0, own=1), 0, None, 96),
        (Server(100, 3, others=5, own=1), 10, None, 81),
        (Server(100, 3, others=5, own=1), 10, 20, 20),  # the cap is lower
        (Server(30, 3, others=5, own=1), 5, 20, 16),  # the server is lower than the cap
        (Server(10, 3, others=9, own=1), 2, None, 0),  # never negative
    ],
)
def test_fleet_budget(server: Server, reserve: int, cap: int | None, budget: int) -> None:
    """The budget is what the server allows less the reserve and the others, capped."""
    assert fleet_budget(server, reserve, cap) == budget


@pytest.mark.parametrize(
    ("budget", "workers", "held", "expected"),
    [
        # An equal split, by weight only (no needs reported).
        (20, [Demand(k("a", i)) for i in range(10)], {}, {k("a", i): 2 for i in range(10)}),
        # Per-worker ceiling: the rest stays unallocated.
        (20, [Demand(k("a", 0), max_size=3)], {}, {k("a", 0): 3}),
        # Weights 3:1 over two workers.
        (
            8,
            [Demand(k("a", 0), weight=3), Demand(k("b", 0), weight=1)],
            {},
            {k("a", 0): 6, k("b", 0): 2},
        ),
        # More workers than connections: those holding one keep it, newcomers get 0.
        (
            2,
            [Demand(k("a", 0)), Demand(k("a", 1)), Demand(k("a", 2))],
            {k("a", 2): 1, k("a", 1): 1},
            {k("a", 0): 0, k("a", 1): 1, k("a", 2): 1},
        ),
        # Tuning: the worker that needs 6 gets its 6 before spare goes by weight.
        (
            10,
            [Demand(k("a", 0), need=6.0), Demand(k("b", 0), need=1.0)],
            {},
            {k("a", 0): 6, k("b", 0): 4},  # the spare 2 go by weight
        ),
        (
            8,
            [Demand(k("a", 0), need=6.0), Demand(k("b", 0), need=1.0)],
            {},
            {k("a", 0): 6, k("b", 0): 2},
        ),
        # Needs above the budget: shared in proportion (D'Hondt), one each first.
        (
            6,
            [Demand(k("a", 0), need=10.0), Demand(k("b", 0), need=5.0)],
            {},
            {k("a", 0): 4, k("b", 0): 2},
        ),
        (0, [Demand(k("a", 0))], {}, {k("a", 0): 0}),
    ],
)
def test_allocate(
    budget: int, workers: list[Demand], held: dict[Key, int], expected: dict[Key, int]
) -> None:
    """Targets follow weight and need, respect max_size, and never add up past the budget."""
    sizes = allocate(budget, workers, held)
    assert sizes == expected
    assert sum(sizes.values()) <= budget


def test_scale_up_shrinks_first_and_waits_for_confirmations() -> None:
    """1 -> 3 workers under 6: the old one shrinks; newcomers grow only as it confirms."""
    ledger = Ledger()
    one = ledger.plan(6, {k("a", 0): 6}, {})
    assert [(g.key, g.size) for g in one.grow] == [(k("a", 0), 6)]
    ledger.confirm(k("a", 0), one.grow[0].generation, 6)

    targets = {k("a", 0): 2, k("a", 1): 2, k("a", 2): 2}
    step = ledger.plan(6, targets, {("a", 0): 6})
    assert [(g.key, g.size) for g in step.shrink] == [(k("a", 0), 2)]
    assert step.grow == ()  # not one connection before the shrink is confirmed
    assert set(step.waiting) == {k("a", 1), k("a", 2)}
    assert ledger.total() == 6

    assert ledger.confirm(k("a", 0), step.shrink[0].generation, 2)
    # Confirmed, but the server still shows 5 for it (backends still exiting): room for 1.
    step = ledger.plan(6, targets, {("a", 0): 5})
    assert [(g.key, g.size) for g in step.grow] == [(k("a", 1), 1)]
    step = ledger.plan(6, targets, {("a", 0): 2, ("a", 1): 1})
    assert {(g.key, g.size) for g in step.grow} == {(k("a", 1), 2), (k("a", 2), 2)}
    assert ledger.total() == 6


def test_backends_of_an_exited_worker_still_count() -> None:
    """A worker that exited is forgotten, but its backends on the server still take room."""
    ledger = Ledger()
    old = ledger.plan(4, {k("a", 0): 4}, {}).grow[0]
    ledger.confirm(k("a", 0), old.generation, 4)
    ledger.forget(k("a", 0))
    plan = ledger.plan(4, {k("a", 1): 4}, {("a", 0): 3})
    assert [(g.key, g.size) for g in plan.grow] == [(k("a", 1), 1)]


@pytest.mark.parametrize(
    ("acks", "total"),
    [
        ([], 6),  # nothing confirmed: the old limit holds
        ([("stale", 1)], 6),  # an ACK of an older generation does not count
        ([("current", 3)], 6),  # "I still hold 3" does not confirm a shrink to 2
        ([("current", 2)], 2),
    ],
)
def test_confirmations(acks: list[tuple[str, int]], total: int) -> None:
    """Only an ACK of the latest grant, with no more open than granted, lowers a limit."""
    ledger = Ledger()
    first = ledger.plan(6, {k("a", 0): 6}, {}).grow[0]
    ledger.confirm(k("a", 0), first.generation, 6)
    shrink = ledger.plan(6, {k("a", 0): 2}, {("a", 0): 6}).shrink[0]
    for which, open_connections in acks:
        generation = shrink.generation if which == "current" else first.generation
        ledger.confirm(k("a", 0), generation, open_connections)
    assert ledger.total() == total


def test_nothing_grows_while_the_server_is_unknown() -> None:
    """Without a count from the server (PostgreSQL down), no grant is raised."""
    ledger = Ledger()
    plan = ledger.plan(10, {k("a", 0): 4}, None)
    assert plan.grow == ()
    assert plan.waiting == (k("a", 0),)


@st.composite
def _scenarios(draw: st.DrawFn) -> list[tuple[str, int]]:
    return draw(
        st.lists(
            st.tuples(st.sampled_from(["scale", "deliver", "ack", "plan"]), st.integers(0, 12)),
            max_size=80,
        )
    )


@settings(max_examples=300, deadline=None)
@given(_scenarios(), st.integers(1, 24))
def test_never_over_budget(events: list[tuple[str, int]], budget: int) -> None:
    """Any order of scaling, delivery and confirmation keeps real connections <= budget.

    Workers are modelled as they behave: a grant takes effect when delivered (a
    raise lets the worker open up to it at once; a cut closes down to it), each
    worker's grants arrive in order, and its ACK comes later, in any order with
    other events.
    """
    ledger = Ledger()
    count = 1
    inbox: list[tuple[Key, int, int]] = []  # grants sent, not yet delivered
    applied: dict[Key, tuple[int, int]] = {}  # key -> (size, generation) the worker applied
    acks: list[tuple[Key, int, int]] = []
    for what, n in events:
        if what == "scale":
            count = n
            for key in [key for key in applied if key[1] >= count]:
                del applied[key]  # the worker exited: its connections are gone
                ledger.forget(key)
            inbox = [m for m in inbox if m[0][1] < count]
        elif what == "deliver" and inbox:
            # One worker's grants arrive in the order sent (one ZeroMQ pipe), workers interleave.
            key = inbox[n % len(inbox)][0]
            _, size, generation = inbox.pop(next(i for i, m in enumerate(inbox) if m[0] == key))
            applied[key] = (size, generation)
            acks.append((key, generation, size))
        elif what == "ack" and acks:
            ledger.confirm(*acks.pop(n % len(acks)))
        else:
            workers = [Demand(k("a", i), need=float(n % 5) or None) for i in range(count)]
            targets = allocate(budget, workers, ledger.held())
            observed = {(key[0], key[1]): size for key, (size, _) in applied.items()}
            plan = ledger.plan(budget, targets, observed)
            inbox += [(g.key, g.size, g.generation) for g in (*plan.shrink, *plan.grow)]
        assert sum(size for size, _ in applied.values()) <= budget
        assert ledger.total() <= budget


def test_a_new_ledger_adopts_what_workers_hold() -> None:
    """A restarted plugin learns each worker's pool from its announcement: it counts against
    the budget at once, and new grants are numbered after the worker's last one."""
    ledger = Ledger()
    ledger.adopt(k("a", 0), 5, generation=41)
    ledger.adopt(k("a", 1), 0, generation=0)  # asked, never granted: nothing to count
    assert ledger.total() == 5
    plan = ledger.plan(6, {k("a", 0): 3, k("a", 1): 3}, {("a", 0): 5})
    assert [(g.key, g.size, g.generation) for g in plan.shrink] == [(k("a", 0), 3, 42)]
    assert [(g.key, g.size) for g in plan.grow] == [(k("a", 1), 1)]  # 6 - 5 while a0 cuts
