"""The restart decision as a table: policy, backoff, reset after a good run, crash loops."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from supervisor.config.model import Backoff, BotConfig, RestartMode, SpawnMode
from supervisor.policy.restart import (
    Action,
    Exit,
    History,
    backoff_delay,
    breaker_tripped,
    decide,
)

BACKOFF = Backoff(initial_s=1.0, factor=2.0, max_s=8.0, jitter=0.0, reset_after_s=10.0)
BOT = BotConfig(
    name="b",
    argv=("true",),
    module="",
    spawn=SpawnMode.EXEC,
    workers=1,
    env={},
    cwd=Path("/"),
    restart=RestartMode.ALWAYS,
    stop_signal=15,  # type: ignore[arg-type]
    stop_timeout_s=1.0,
    backoff=BACKOFF,
    max_restarts=3,
    restart_window_s=60.0,
)
CRASH = Exit(code=1)
CLEAN = Exit(code=0)
KILLED = Exit(signal=9)


@pytest.mark.parametrize(
    ("restart", "exit", "action"),
    [
        (RestartMode.ALWAYS, CLEAN, Action.RESTART),
        (RestartMode.ALWAYS, CRASH, Action.RESTART),
        (RestartMode.ALWAYS, KILLED, Action.RESTART),
        (RestartMode.ON_FAILURE, CLEAN, Action.STAY_DOWN),
        (RestartMode.ON_FAILURE, CRASH, Action.RESTART),
        (RestartMode.ON_FAILURE, KILLED, Action.RESTART),
        (RestartMode.NEVER, CLEAN, Action.STAY_DOWN),
        (RestartMode.NEVER, CRASH, Action.STAY_DOWN),
    ],
)
def test_restart_modes(restart: RestartMode, exit: Exit, action: Action) -> None:
    """always restarts everything, on-failure all but a clean exit, never nothing."""
    bot = dataclasses.replace(BOT, restart=restart)
    d = decide(bot, exit, uptime_s=100.0, history=History(), now=1000.0, rand=0.5)
    assert d.action is action


@pytest.mark.parametrize(
    ("quick_failures", "uptime_s", "delay_s", "next_quick"),
    [
        (0, 0.1, 0.0, 1),  # the first failure restarts at once
        (1, 0.1, 1.0, 2),  # then initial_s
        (2, 0.1, 2.0, 3),  # times factor
        (3, 0.1, 4.0, 4),
        (4, 0.1, 8.0, 5),  # capped at max_s
        (9, 0.1, 8.0, 10),
        (5, 10.0, 0.0, 1),  # up for reset_after_s: counts as a first failure again
        (5, 9.99, 8.0, 6),
    ],
)
def test_backoff_grows_and_resets(
    quick_failures: int, uptime_s: float, delay_s: float, next_quick: int
) -> None:
    """Quick failures in a row back off exponentially; a long enough run resets the count."""
    d = decide(
        BOT, CRASH, uptime_s=uptime_s, history=History(quick_failures, ()), now=0.0, rand=0.5
    )
    assert (d.action, d.delay_s, d.history.quick_failures) == (Action.RESTART, delay_s, next_quick)


@pytest.mark.parametrize(("rand", "delay_s"), [(0.0, 3.6), (0.5, 4.0), (0.999999, 4.4)])
def test_jitter_spreads_the_delay(rand: float, delay_s: float) -> None:
    """Jitter moves the delay by up to +/- jitter of itself, so crashed workers do not restart in step."""
    backoff = dataclasses.replace(BACKOFF, jitter=0.1)
    assert backoff_delay(backoff, 3, rand) == pytest.approx(delay_s, abs=1e-5)


@pytest.mark.parametrize(
    ("restart_times", "now", "action"),
    [
        ((), 100.0, Action.RESTART),
        ((50.0, 60.0), 100.0, Action.RESTART),  # 2 of 3 allowed
        ((50.0, 60.0, 70.0), 100.0, Action.FAIL_SLOT),  # a 4th restart within 60s: crash loop
        ((30.0, 60.0, 70.0), 100.0, Action.RESTART),  # the oldest left the window
        ((41.0, 60.0, 70.0), 100.0, Action.FAIL_SLOT),  # 59 s ago is inside the window
        ((40.0, 60.0, 70.0), 100.0, Action.RESTART),  # exactly 60 s ago is not
    ],
)
def test_crash_loop_fails_the_slot(
    restart_times: tuple[float, ...], now: float, action: Action
) -> None:
    """More than max_restarts restarts within restart_window_s fail the slot (not the bot)."""
    d = decide(BOT, CRASH, uptime_s=100.0, history=History(0, restart_times), now=now, rand=0.5)
    assert d.action is action
    if action is Action.FAIL_SLOT:
        assert d.reason == "restarted 3 times within 60s"


def test_restart_times_are_pruned_to_the_window() -> None:
    """The history keeps only restarts inside the window, so it stays small."""
    d = decide(
        BOT, CRASH, uptime_s=100.0, history=History(0, (1.0, 2.0, 90.0)), now=100.0, rand=0.5
    )
    assert d.history.restart_times == (90.0, 100.0)


def test_exit_from_returncode() -> None:
    """Negative return codes mean the signal that killed the process."""
    assert Exit.from_returncode(-9) == Exit(signal=9)
    assert Exit.from_returncode(3) == Exit(code=3)
    assert Exit.from_returncode(0).clean


@pytest.mark.parametrize(
    ("failed", "slots", "fail_bot_at", "tripped"),
    [
        (0, 4, 1.0, False),  # nothing failed
        (1, 4, 1.0, False),  # one slot of four: the bot is degraded, not failed
        (3, 4, 1.0, False),
        (4, 4, 1.0, True),  # the default: every slot failed
        (1, 1, 1.0, True),
        (2, 4, 0.5, True),  # half of the slots
        (1, 4, 0.5, False),
        (1, 4, 0.01, True),  # any one slot (the old behaviour)
        (3, 10, 0.3, True),  # 0.3 * 10 is 3, not 3.0000000000000004
        (0, 0, 1.0, False),  # scaled to zero
    ],
)
def test_bot_breaker(failed: int, slots: int, fail_bot_at: float, tripped: bool) -> None:
    """The bot fails only when fail_bot_at of its slots have failed on their own."""
    assert breaker_tripped(failed, slots, fail_bot_at) is tripped
