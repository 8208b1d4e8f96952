"""Our side of the guardian: what it is told when a group is forgotten."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from supervisor.daemon.helpers.handles import Guardian
from supervisor.daemon.process import Child, Reaper


def _child(pgid: int, ticks: int) -> Child:
    return cast(Child, SimpleNamespace(pgid=pgid, start_ticks=ticks))


def test_a_late_remove_keeps_the_newer_group_that_reused_the_id() -> None:
    """A leftover's end is awaited; meanwhile its pid went to a new worker (another start
    time). Forgetting the old group must not forget the new one, here or in the guardian."""
    g = Guardian(cast(Reaper, None))
    old, new = _child(4242, 100), _child(4242, 900)
    g.add(old, 15, 1.0)
    g.add(new, 15, 1.0)
    g.remove(old)
    assert [(x.pgid, x.start_ticks) for x in g.groups()] == [(4242, 900)]
    assert b"del 4242\n" not in g._outbox
    g.remove(new)
    assert g.groups() == []
    assert g._outbox[-1] == b"del 4242\n"
