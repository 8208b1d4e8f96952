"""The dependency gate: what a worker's exit means while the bot's `needs` may be down (pure).

A bot that needs Redis crash-loops when Redis is down, through no fault of its own. So the
fleet asks the gate before it counts an exit:

    on_exit      no needs: COUNT (the restart policy decides); a need is down: HOLD (not
                 counted, not restarted); else CHECK (ask every need first, then COUNT or
                 HOLD by the answer)
    observe      fold one round of answers into the gate: which needs are down, how many
                 rounds in a row failed (for backoff), and the transitions, each once
                 (`dependency_down` / `dependency_up`); when the last one is back the
                 held workers start again together
    retry_delay  backoff between rounds while something is down: initial_s * 2**(n-1),
                 capped at max_s (short: the bot should resume soon after the service)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class OnExit(enum.StrEnum):
    COUNT = "count"
    HOLD = "hold"
    CHECK = "check"


@dataclass(frozen=True, slots=True)
class Gate:
    """What the fleet remembers of a bot's needs between rounds of checks."""

    down: tuple[str, ...] = ()  # needs that did not answer the last round, in config order
    failed_rounds: int = 0  # rounds in a row with something down


@dataclass(frozen=True, slots=True)
class Observed:
    gate: Gate
    went_down: tuple[str, ...]  # emit dependency_down for each
    came_up: tuple[str, ...]  # emit dependency_up for each
    resume: bool  # everything is back after an outage: start the held workers together


def on_exit(gate: Gate, has_needs: bool) -> OnExit:
    """Count this exit toward the crash loop, hold it, or check the needs first."""
    if not has_needs:
        return OnExit.COUNT
    return OnExit.HOLD if gate.down else OnExit.CHECK


def observe(gate: Gate, answers: Mapping[str, bool]) -> Observed:
    """One round of checks (url -> answered), in the bot's config order."""
    down = tuple(url for url, ok in answers.items() if not ok)
    went_down = tuple(url for url in down if url not in gate.down)
    came_up = tuple(url for url in gate.down if url not in down)
    rounds = gate.failed_rounds + 1 if down else 0
    resume = bool(gate.down) and not down
    return Observed(Gate(down, rounds), went_down, came_up, resume)


def retry_delay_s(gate: Gate, initial_s: float = 0.1, max_s: float = 2.0) -> float:
    """Seconds until the next round while something is down (0 when nothing is)."""
    if not gate.down:
        return 0.0
    return min(max_s, initial_s * 2.0 ** max(0, gate.failed_rounds - 1))
