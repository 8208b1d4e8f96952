"""A bot's worker slots, and the states of slots and bots derived from them.

A slot is a worker position, numbered from 0, that outlives its processes.
States are derived, never stored:

    worker  running    alive and ready
            starting   being spawned, or alive but not ready yet
            stopping   we asked it to stop and wait for it
            backoff    no process; the next spawn waits for its restart delay
            exited     it ended and its restart policy keeps it down
            stopped    stopped by hand (`stop BOT --worker N`) or with its bot
            failed     it crash-looped (or its bot failed); it stays down until
                       `start BOT [--worker N]`

    bot     running    every desired worker runs and is ready
            starting   some are missing or not ready, and on their way
            degraded   some are missing and stay down (exited, failed, or stopped by hand)
            stopping / stopped
            failed     `fail_bot_at` of its slots failed (policy/restart.breaker_tripped)
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from supervisor.daemon.channel import WorkerLink
from supervisor.daemon.process import Child
from supervisor.policy import restart, victims


class WorkerState(enum.StrEnum):
    RUNNING = "running"
    STOPPING = "stopping"
    STARTING = "starting"
    BACKOFF = "backoff"
    EXITED = "exited"
    STOPPED = "stopped"
    FAILED = "failed"


class BotState(enum.StrEnum):
    RUNNING = "running"  # every desired worker runs and is ready
    STARTING = "starting"  # some are missing and on their way back
    DEGRADED = "degraded"  # some are missing and stay down (exited or stopped by hand)
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    WAITING = "waiting"  # for the bots it depends on to be ready
    SUCCEEDED = "succeeded"  # a one-shot whose run exited 0 (kind = "oneshot")
    SCHEDULED = "scheduled"  # a one-shot on a schedule, before its first tick


@dataclass
class Slot:
    """One worker position of a bot, numbered from 0; it outlives its processes."""

    index: int
    child: Child | None = None
    restart_at: float | None = 0.0  # when it may spawn; None: stays down
    stopping: bool = False
    spawning: bool = False  # a fork-server spawn is in flight
    held: bool = False  # stopped by hand
    link: WorkerLink | None = None  # the live process's channel
    condemned: str = ""  # why the watchdog is killing it
    restarts: int = 0
    unresponsive: int = 0  # watchdog kills
    failure: str = ""  # why it crash-looped and stays down ("" while it may restart)
    held_exit: tuple[restart.Exit, float] | None = None  # (exit, uptime_s) until needs checked
    last_exit: tuple[int | None, int | None] | None = None  # (code, signal) of its last process
    history: restart.History = field(default_factory=restart.History)

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.alive

    @property
    def ready(self) -> bool:
        return self.alive and not self.stopping and self.link is not None and self.link.ready


def worker_state(slot: Slot, now: float, bot_stopped: bool, bot_failed: bool) -> WorkerState:
    if slot.spawning:
        return WorkerState.STARTING
    if slot.alive:
        if slot.stopping:
            return WorkerState.STOPPING
        return WorkerState.RUNNING if slot.ready else WorkerState.STARTING
    if bot_failed or slot.failure:
        return WorkerState.FAILED
    if slot.held or bot_stopped:
        return WorkerState.STOPPED
    if slot.restart_at is None:
        return WorkerState.EXITED
    return WorkerState.BACKOFF if slot.restart_at > now else WorkerState.STARTING


def bot_state(
    slots: Iterable[Slot], wanted: Collection[int], stopped: bool, failed: bool
) -> BotState:
    """`wanted`: the slot numbers that should run (policy/victims.py keeps them)."""
    slots = list(slots)
    if failed:
        return BotState.FAILED
    if stopped:
        return BotState.STOPPING if any(s.alive for s in slots) else BotState.STOPPED
    if sum(1 for s in slots if s.ready and s.index in wanted) == len(wanted):
        return BotState.RUNNING
    coming = [s for s in slots if s.index in wanted and _coming_back(s)]
    if coming or sum(1 for s in slots if s.index in wanted) < len(wanted):
        return BotState.STARTING
    return BotState.DEGRADED


def candidate(slot: Slot) -> victims.Candidate:
    """A kept slot as the scale-down choice sees it: alive, ready, the work it holds, CPU."""
    child, link = slot.child, slot.link
    if child is None or not slot.alive:
        return victims.Candidate(slot.index, alive=False, ready=False)
    busy = victims.busy_of(link.metrics()) if link is not None else None
    return victims.Candidate(slot.index, True, slot.ready, busy, child.sample()[0])


def _coming_back(slot: Slot) -> bool:
    """Missing or not ready, but on its way (not held down, not stayed down)."""
    if slot.alive:
        return not slot.ready
    return slot.spawning or (not slot.held and slot.restart_at is not None)
