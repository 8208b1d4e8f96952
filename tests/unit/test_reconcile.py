"""The reconcile plan: which slots start and which stop for a target count."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from supervisor.policy.reconcile import Trim, next_due, to_spawn, to_trim


@dataclass
class S:
    index: int
    alive: bool = False
    stopping: bool = False
    spawning: bool = False
    held: bool = False
    restart_at: float | None = 0.0


NOW = 100.0


def slots(*items: S) -> dict[int, S]:
    return {s.index: s for s in items}


@pytest.mark.parametrize(
    ("have", "target", "blocked", "spawn"),
    [
        ((), 3, False, [0, 1, 2]),  # a new bot: every slot is new, lowest first
        ((S(0, alive=True), S(1, alive=True)), 2, False, []),  # at target: nothing
        ((S(0, alive=True),), 3, False, [1, 2]),  # scale up: the missing ones
        ((S(0, restart_at=NOW + 1), S(1, restart_at=NOW)), 2, False, [1]),  # backoff not over
        ((S(0, restart_at=None),), 1, False, []),  # exited, kept down by its policy
        ((S(0, held=True),), 1, False, []),  # stopped by hand
        ((S(0, spawning=True), S(1, stopping=True)), 2, False, []),  # in flight either way
        ((S(0), S(1)), 2, True, []),  # failed or shutting down: nothing starts
        ((S(0), S(5)), 2, False, [0, 1]),  # slots above the target are not started
    ],
)
def test_to_spawn(have: tuple[S, ...], target: int, blocked: bool, spawn: list[int]) -> None:
    """Due slots below the target start, lowest first; blocked bots start none."""
    assert to_spawn(slots(*have), range(target), NOW, blocked) == spawn


INF = float("inf")


@pytest.mark.parametrize(
    ("have", "target", "blocked", "wait_s"),
    [
        ((S(0, restart_at=NOW + 2), S(1, restart_at=NOW + 0.5)), 2, False, 0.5),  # the earliest
        ((S(0, restart_at=NOW - 0.01),), 1, False, 0.0),  # due during the pass: now, not never
        ((S(0, restart_at=NOW),), 1, False, 0.0),  # a delay of 0 (a first failure)
        ((S(0, alive=True),), 1, False, INF),  # running: nothing to wait for
        ((S(0, restart_at=None),), 1, False, INF),  # stays down
        ((S(0, held=True), S(1, stopping=True), S(2, spawning=True)), 3, False, INF),
        ((S(0), S(3, restart_at=NOW + 1)), 1, False, 0.0),  # slot 3 is above the target
        ((S(1, restart_at=NOW + 1),), 1, False, INF),  # not wanted: no wake-up for it
        ((S(0),), 1, True, INF),  # blocked: only a poke (start, needs back) unblocks it
    ],
)
def test_next_due(have: tuple[S, ...], target: int, blocked: bool, wait_s: float) -> None:
    """The wait until to_spawn names a slot: 0 for one due already, inf when none will be."""
    assert next_due(slots(*have), range(target), NOW, blocked) == pytest.approx(wait_s)


@pytest.mark.parametrize(
    ("have", "target", "desired", "trim"),
    [
        ((S(0, alive=True), S(1, alive=True)), 2, 2, Trim()),
        ((S(0, alive=True), S(1, alive=True), S(2, alive=True)), 1, 1, Trim(stop=(2, 1))),
        ((S(0, alive=True), S(1, alive=True, stopping=True)), 1, 1, Trim()),  # already stopping
        ((S(0, alive=True), S(1), S(2)), 1, 1, Trim(forget=(2, 1))),  # empty: forgotten
        ((S(0, alive=True), S(1)), 1, 2, Trim()),  # below desired (a bot held back): kept
        ((S(0), S(1, spawning=True)), 1, 1, Trim()),  # a fork in flight is not forgotten
        ((S(3, alive=True), S(1, alive=True)), 0, 0, Trim(stop=(3, 1))),  # stop: highest first
    ],
)
def test_to_trim(have: tuple[S, ...], target: int, desired: int, trim: Trim) -> None:
    """Live slots above the target stop from the top; empty ones above desired are dropped."""
    assert to_trim(slots(*have), range(target), range(desired)) == trim


def test_holes_left_by_a_scale_down() -> None:
    """Kept slots {0, 2, 3} (slot 1 was the idlest): 1 is neither started nor stopped, and
    an empty slot 1 is forgotten; a live 1 outside the wanted set is stopped."""
    kept = (0, 2, 3)
    assert to_spawn(slots(S(0, alive=True)), kept, NOW) == [2, 3]
    assert to_trim(slots(S(0, alive=True), S(1), S(2, alive=True)), kept, kept) == Trim(forget=(1,))
    assert to_trim(slots(S(1, alive=True), S(3, alive=True)), kept, kept) == Trim(stop=(1,))
