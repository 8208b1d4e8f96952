"""The restart decision: what to do when a worker exits on its own.

Pure: it takes the bot's policy, how the worker ended, how long it was up,
the slot's recent history, `now` and a random number, and returns what to
do. The fleet observes the exit, calls `decide`, and acts.

Vocabulary from Erlang/OTP: `restart` is permanent (`always`), transient
(`on-failure`) or temporary (`never`); the *restart intensity* is
`max_restarts` within `restart_window_s`. Here it is counted per worker
slot, and a slot crash-looping fails on its own (`FAIL_SLOT`): its siblings
keep running, as OTP's intensity applies to one supervisor, not to every
child of the node. The bot as a whole fails (`breaker_tripped`) only once
`fail_bot_at` of its slots have failed; by default all of them, because a
bot with one working slot still serves, and a kill storm that hammers a few
slots must not drain the healthy rest.

Backoff: the first failure of a worker that was up for a while restarts it
at once (fast replacement matters most); each further quick failure in a
row waits `initial_s * factor**(n-1)`, capped at `max_s`, +/- `jitter`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from supervisor.config.model import Backoff, BotConfig, RestartMode


class Action(enum.StrEnum):
    RESTART = "restart"
    STAY_DOWN = "stay_down"
    FAIL_SLOT = "fail_slot"


@dataclass(frozen=True, slots=True)
class Exit:
    """How a process ended: an exit code, or the signal that killed it."""

    code: int | None = None
    signal: int | None = None

    @classmethod
    def from_returncode(cls, returncode: int) -> Exit:
        """From `os.waitstatus_to_exitcode`: negative means killed by that signal."""
        return cls(signal=-returncode) if returncode < 0 else cls(code=returncode)

    @property
    def clean(self) -> bool:
        return self.code == 0


@dataclass(frozen=True, slots=True)
class History:
    """What a slot remembers between exits."""

    quick_failures: int = 0  # restarts in a row, each after less than reset_after_s up
    restart_times: tuple[float, ...] = ()  # within the restart window


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float
    reason: str
    history: History


def decide(
    bot: BotConfig, exit: Exit, *, uptime_s: float, history: History, now: float, rand: float
) -> Decision:
    """Restart (after a delay), stay down, or fail the slot; `rand` is in [0, 1)."""
    if bot.restart is RestartMode.NEVER:
        return Decision(Action.STAY_DOWN, 0.0, "restart is never", history)
    if bot.restart is RestartMode.ON_FAILURE and exit.clean:
        return Decision(Action.STAY_DOWN, 0.0, "exited cleanly; restart is on-failure", history)
    recent = tuple(t for t in history.restart_times if now - t < bot.restart_window_s)
    if len(recent) >= bot.max_restarts:
        reason = f"restarted {len(recent)} times within {bot.restart_window_s:g}s"
        return Decision(Action.FAIL_SLOT, 0.0, reason, History(history.quick_failures, recent))
    quick = 0 if uptime_s >= bot.backoff.reset_after_s else history.quick_failures
    delay = backoff_delay(bot.backoff, quick, rand)
    reason = "first failure" if quick == 0 else f"failure {quick + 1} in a row"
    return Decision(Action.RESTART, delay, reason, History(quick + 1, (*recent, now)))


def backoff_delay(backoff: Backoff, quick_failures: int, rand: float) -> float:
    """0 for the first failure; then exponential, capped, with +/- jitter."""
    if quick_failures == 0:
        return 0.0
    base = min(backoff.max_s, backoff.initial_s * backoff.factor ** (quick_failures - 1))
    return max(0.0, base * (1.0 + backoff.jitter * (2.0 * rand - 1.0)))


def breaker_tripped(failed_slots: int, slots: int, fail_bot_at: float) -> bool:
    """The bot fails once `fail_bot_at` (a share of its slots, in (0, 1]) have failed."""
    if slots <= 0 or failed_slots <= 0:
        return False
    return failed_slots >= max(1, math.ceil(round(fail_bot_at * slots, 9)))
