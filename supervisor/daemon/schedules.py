"""The schedule of one one-shot bot: sleep until the next tick, then do what the tick says.

The next tick and a tick's action are policy/schedule.py's. A tick starts a run (every kept
worker of the bot runs once more), or, with the last run still going, is skipped, queues one
run (started as soon as the current one ends) or replaces the run (its workers are stopped
and started again). Ticks are on the wall clock (a cron's zone), so the runner wakes at least
every _MAX_SLEEP_S to notice a clock change. The last tick is kept in
run_dir/jobs/BOT.json, so `catch_up = true` can make up for ticks missed while the
supervisor was down (one run at start). Every tick is a `job_ticked` event with its action.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import anyio
import structlog

from supervisor.daemon.events import Events
from supervisor.daemon.fleet import Bot
from supervisor.daemon.state import write_atomic
from supervisor.policy import oneshot
from supervisor.policy.schedule import Action, Schedule, missed, next_tick, on_tick

log = structlog.get_logger("supervisor.schedules")

_MAX_SLEEP_S = 30.0  # wake this often anyway: the wall clock may have been set
_QUEUED_POLL_S = 0.1  # with a run queued, look this often whether the current one ended


class ScheduleRunner:
    def __init__(self, bot: Bot, schedule: Schedule, events: Events, run_dir: Path) -> None:
        self.bot, self.schedule, self.events = bot, schedule, events
        self._path = run_dir / "jobs" / f"{bot.name}.json"
        assert bot.job is not None  # a schedule is for one-shots (the config says so)
        self.job = bot.job
        self.job.schedule = schedule.describe()

    async def run(self) -> None:
        anchor = time.time()
        if missed(self.schedule, self._last_tick(), anchor):
            await self._tick(anchor, catch_up=True)
        tick = next_tick(self.schedule, anchor, anchor)
        while True:
            self.job.next_run_at = tick
            while (now := time.time()) < tick:
                wait = _QUEUED_POLL_S if self.job.queued else _MAX_SLEEP_S
                await anyio.sleep(min(tick - now, wait))
                self._start_queued()
            await self._tick(tick)
            tick = next_tick(self.schedule, max(tick, time.time()), anchor)

    async def _tick(self, at: float, catch_up: bool = False) -> None:
        running = self.bot.outcome() is oneshot.Outcome.RUNNING
        action = on_tick(self.schedule.overlap, running, self.job.queued)
        self.job.ticks += 1
        self.job.last_tick_at = at
        self.events.emit(
            "job_ticked", bot=self.bot.name, at=round(at, 3), action=action.value, catch_up=catch_up
        )
        if action is Action.START:
            self.bot.run_again()
        elif action is Action.SKIP:
            self.job.skipped += 1
        elif action is Action.QUEUE:
            self.job.queued = True
        else:
            await self.bot.end_run()
            self.bot.run_again()
        self._save(at)

    def _start_queued(self) -> None:
        if self.job.queued and self.bot.outcome() is not oneshot.Outcome.RUNNING:
            self.job.queued = False
            self.events.emit("job_dequeued", bot=self.bot.name)
            self.bot.run_again()

    def _last_tick(self) -> float | None:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            return float(json.loads(self._path.read_bytes())["last_tick"])
        return None

    def _save(self, at: float) -> None:
        try:
            self._path.parent.mkdir(mode=0o700, exist_ok=True)
            write_atomic(self._path, json.dumps({"last_tick": at}).encode())
        except OSError as e:  # a full disk costs a catch-up, not the schedule
            log.warning("job_tick_not_saved", bot=self.bot.name, error=str(e))
