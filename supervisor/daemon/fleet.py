"""A bot: its group of workers, kept at the desired count.

Each bot runs one task that reconciles desired and actual: it spawns the
slots that should run and may (their backoff is over), and stops the slots
above the desired count, highest first. Exits arrive from the reaper as
callbacks; the restart decision is `restart.decide`, pure; the task is
woken by every change. Slots and their derived states are in slots.py.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import anyio
import anyio.abc
import anyio.lowlevel
import structlog

from supervisor.config.model import BotConfig, Readiness, SpawnMode
from supervisor.config.process import ProcessSettings
from supervisor.daemon.channel import Channel, WorkerLink
from supervisor.daemon.dependencies import NeedsWatch
from supervisor.daemon.events import Events
from supervisor.daemon.helpers.handles import ForkServer, Guardian
from supervisor.daemon.logfiles import LogWriter
from supervisor.daemon.output import LineReader
from supervisor.daemon.probing import BotProbes
from supervisor.daemon.process import Child, Reaper, end_group
from supervisor.daemon.propagation import restart_followers
from supervisor.daemon.slots import BotState, Slot, WorkerState, bot_state, worker_state
from supervisor.policy import dependency_gate, health, propagation, reconcile, restart
from supervisor.wire import protocol

log = structlog.get_logger("supervisor.fleet")

_SPAWNS_PER_TICK = 16  # then let the loop breathe (control requests, exits)
_SPAWN_FAILED_CODE = 127  # what a shell reports for a program that cannot be run
_DEPENDENCY_POLL_S = 0.05  # a waiting bot looks at its dependencies this often
_ROLL_POLL_S = 0.05  # a rolling restart looks for the new worker's readiness this often


@dataclass
class FleetContext:
    """What bots need from their supervisor."""

    reaper: Reaper
    guardian: Guardian
    fork_server: ForkServer
    channel: Channel
    events: Events
    task_group: anyio.abc.TaskGroup
    base_env: dict[str, str]
    changed: Callable[[], None]  # the set of live process groups changed
    logs: LogWriter | None = None  # worker output to files under run_dir/logs
    # The workers socket's address for a bot's user (bots of other users get their own).
    worker_endpoint: Callable[[ProcessSettings], str] | None = None


class Bot:
    def __init__(self, spec: BotConfig, ctx: FleetContext, pin: int | None = None) -> None:
        self.spec = spec
        self.pin = pin
        self.auto_desired = spec.workers  # the autoscaler moves this
        self._speaks_sdk = False  # a worker of this bot has said HELLO
        self.slots: dict[int, Slot] = {}
        self.stopped = False
        self.halted = False  # the supervisor is shutting down: nothing starts any more
        self.failure: str | None = None
        self.restarts = 0
        self.started_at: float | None = None
        self._ctx = ctx
        self._wake = anyio.Event()
        self._next_pass = anyio.Event()
        self._spawns_in_flight = 0
        self._spawns_done = anyio.Event()
        self._rng = random.Random()
        self.dependencies: list[Bot] = []  # set by the supervisor, from spec.depends_on
        self.dependents: list[Bot] = []  # the bots whose depends_on names this one
        self._full_set_at: float | None = None  # the newest start of the last full set
        self.waiting_for: list[str] = []
        self._roll_lock = anyio.Lock()
        self._env: dict[str, str] = {}
        self._limits = health.Limits(0, 0, 0)
        self._needs = NeedsWatch(spec.name, spec.needs, ctx.events, self._on_needs_checked)

        self.probes = BotProbes(ctx.reaper, ctx.events, ctx.task_group, self._kill_unhealthy)
        self.update_spec(spec)

    def update_spec(self, spec: BotConfig) -> None:
        """A new spec (a reload): it applies to the workers started from now on."""
        self.spec = spec
        if self._needs.needs != spec.needs:  # a reload: what was down may be needed no more
            self._needs.needs, self._needs.gate = spec.needs, dependency_gate.Gate()
        self._env = (
            self._ctx.base_env
            | dict(spec.env)
            | {
                "SUPERVISOR_BOT": spec.name,
                "SUPERVISOR_HEARTBEAT_S": f"{spec.heartbeat_interval_s:g}",
                "SUPERVISOR_STOP_SIGNAL": str(int(spec.stop_signal)),
            }
        )
        if self._ctx.worker_endpoint is not None:
            self._env["SUPERVISOR_WORKERS"] = self._ctx.worker_endpoint(spec.process)
        self._env.setdefault("PYTHONUNBUFFERED", "1")  # print() reaches the log at once
        self._limits = health.Limits(
            spec.ready_after_s, spec.ready_timeout_s, spec.heartbeat_timeout_s
        )
        if self._ctx.logs is not None:
            self._ctx.logs.configure(spec.name, spec.logs)
        self.poke()

    # ------------------------------------------------------------ counts and states

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def desired(self) -> int:
        """A pin wins; else the autoscaler's count; else `workers` from the config."""
        if self.pin is not None:
            return self.pin
        return self.auto_desired if self.spec.scale is not None else self.spec.workers

    @property
    def mode(self) -> str:
        if self.pin is not None:
            return "pinned"
        return "auto" if self.spec.scale is not None else "fixed"

    @property
    def target(self) -> int:
        return 0 if self.stopped else self.desired

    @property
    def running(self) -> int:
        return sum(1 for s in self.slots.values() if s.alive and not s.stopping)

    @property
    def ready(self) -> int:
        return sum(1 for s in self.slots.values() if s.ready)

    @property
    def needs_down(self) -> list[str]:
        """The bot's `needs` that did not answer the last check."""
        return list(self._needs.gate.down)

    def state(self) -> BotState:
        if (self.waiting_for or self._needs.gate.down) and not (self.stopped or self.halted):
            return BotState.WAITING
        return bot_state(self.slots.values(), self.target, self.stopped, self.failure is not None)

    @property
    def up(self) -> bool:
        """Every desired worker is ready: what a bot that depends on this one waits for."""
        waiting = self.waiting_for or self._needs.gate.down
        return not waiting and self.ready >= self.target and not self.stopped

    def worker_state(self, slot: Slot, now: float) -> WorkerState:
        return worker_state(slot, now, self.stopped, self.failure is not None)

    # ------------------------------------------------------------ the reconcile task

    def poke(self) -> None:
        """Something changed: reconcile soon."""
        self._wake.set()

    async def settle(self) -> None:
        """Wait until a reconcile pass has run that began after this call."""
        if self.waiting_for:
            return  # no pass runs before its dependencies are up
        done = self._next_pass
        self.poke()
        await done.wait()

    async def run(self) -> None:
        await self._wait_for_dependencies()
        if self.spec.needs:
            await self._needs.check_now()  # a bot whose Redis is down waits, never starts
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._needs.run)
            await self._reconcile_forever()

    async def _reconcile_forever(self) -> None:
        while True:
            done, self._next_pass = self._next_pass, anyio.Event()
            await self._reconcile()
            done.set()
            with anyio.move_on_after(self._next_due(time.monotonic())):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def _wait_for_dependencies(self) -> None:
        """Start only once every bot in `depends_on` has all its workers ready."""
        self.waiting_for = [d.name for d in self.dependencies if not d.up]
        if not self.waiting_for:
            return
        self._ctx.events.emit("bot_waiting", bot=self.name, depends_on=list(self.waiting_for))
        while self.waiting_for and not self.halted:
            await anyio.sleep(_DEPENDENCY_POLL_S)
            self.waiting_for = [d.name for d in self.dependencies if not d.up]
        self.waiting_for = []

    async def _reconcile(self) -> None:
        """Start the slots the plan names, then stop or forget those above the target."""
        blocked = self.failure is not None or self.halted or bool(self._needs.gate.down)
        due = reconcile.to_spawn(self.slots, self.target, time.monotonic(), blocked)
        for spawned, index in enumerate(due, start=1):
            if index >= self.target:  # scaled down while we let the loop breathe
                break
            self._spawn(self.slots.setdefault(index, Slot(index)))
            exec_spawns = self.spec.spawn is SpawnMode.EXEC  # forks are queued, not done here
            if exec_spawns and spawned % _SPAWNS_PER_TICK == 0:
                await anyio.lowlevel.checkpoint()
        trim = reconcile.to_trim(self.slots, self.target, self.desired)
        for index in trim.stop:
            self._ctx.task_group.start_soon(self._stop_slot, self.slots[index], True)
        for index in trim.forget:
            del self.slots[index]

    def _next_due(self, now: float) -> float:
        """Seconds until the earliest backoff ends (inf if none)."""
        waits = [
            s.restart_at - now
            for s in self.slots.values()
            if s.restart_at is not None and not s.alive and s.restart_at > now
        ]
        return max(0.0, min(waits)) if waits else float("inf")

    # ------------------------------------------------------------ spawning and exits

    def _spawn(self, slot: Slot) -> None:
        link = self._ctx.channel.open_link(self.name, slot.index)
        link.on_ready = partial(self._on_ready, slot)
        link.on_hello = self._on_hello
        link.revoke_on_hello = self.spec.readiness is not Readiness.DELAY
        slot.link = link
        env = (
            self._env
            | {
                "SUPERVISOR_WORKER": str(slot.index),
                "SUPERVISOR_TOKEN": link.token.hex(),
            }
            | ({"PORT": str(self.spec.port + slot.index)} if self.spec.port else {})
        )
        slot.restart_at = None
        if self.spec.spawn is SpawnMode.FORK_SERVER:
            slot.spawning = True
            self._spawns_in_flight += 1
            self._ctx.task_group.start_soon(self._fork, slot, env)
            return
        try:
            child = Child.spawn(
                self.spec.argv, env, self.spec.cwd, self._ctx.reaper, self.spec.process
            )
        except OSError as e:
            self._spawn_failed(slot, e)
            return
        self._adopt(slot, child, env)

    async def _fork(self, slot: Slot, env: dict[str, str]) -> None:
        title = f"supervisor: {self.name}[{slot.index}] {self.spec.module}"
        stop = (int(self.spec.stop_signal), self.spec.stop_timeout_s)
        try:
            process = None if self.spec.process.empty else self.spec.process.as_request()
            child = await self._ctx.fork_server.spawn(
                self.spec.module, env, self.spec.cwd, title, stop, process=process
            )
        except OSError as e:
            self._spawn_failed(slot, e)
        else:
            self._adopt(slot, child, env)
        finally:
            slot.spawning = False
            self._spawns_in_flight -= 1
            if not self._spawns_in_flight:
                self._spawns_done.set()
                self._spawns_done = anyio.Event()
            self.poke()

    def _spawn_failed(self, slot: Slot, error: OSError) -> None:
        self._close_link(slot)
        self._ctx.events.emit(
            "worker_spawn_failed", "error", bot=self.name, worker=slot.index, error=str(error)
        )
        self._decide(slot, restart.Exit(code=_SPAWN_FAILED_CODE), uptime_s=0.0)

    def _adopt(self, slot: Slot, child: Child, env: dict[str, str]) -> None:
        slot.child = child
        if slot.link is not None:
            slot.link.started_at = child.started_at
        child.on_exit = partial(self._on_exit, slot, child)
        self.started_at = self.started_at or child.started_at
        self._ctx.guardian.add(child, self.spec.stop_signal, self.spec.stop_timeout_s)
        self._read_output(slot, child)
        self._ctx.changed()
        self._ctx.events.emit("worker_spawned", bot=self.name, worker=slot.index, pid=child.pid)
        self._note_full_set()
        if slot.link is not None and self.spec.readiness is not Readiness.SDK:
            self._ctx.task_group.start_soon(self._ready_in_due_time, slot, slot.link)
        self.probes.start(self.spec, slot, child, env)

    def _note_full_set(self) -> None:
        """Every desired worker replaced since the last full set: the bot restarted."""
        live = [s.child for s in self.slots.values() if s.index < self.target and s.alive]
        starts = [c.started_at for c in live if c is not None]
        restarted, self._full_set_at = propagation.full_set(starts, self.target, self._full_set_at)
        if restarted:
            self._ctx.task_group.start_soon(restart_followers, self, self._ctx.events)

    def _on_ready(self, slot: Slot, link: WorkerLink) -> None:
        if not self.probes.admits_ready(self.spec, slot, link):
            return  # its readiness probe (or the SDK, with both) has not agreed yet
        pid = slot.child.pid if slot.child else None
        after_s = round((link.ready_at or link.started_at) - link.started_at, 3)
        self._ctx.events.emit(
            "worker_ready", bot=self.name, worker=slot.index, pid=pid, after_s=after_s
        )

    def _on_hello(self, link: WorkerLink) -> None:
        """One worker speaks the SDK: with readiness "auto", the bot's next ones are waited for."""
        self._speaks_sdk = True

    def expects_sdk(self, link: WorkerLink) -> bool:
        """Is this worker's readiness the SDK's to tell (so it must connect)?"""
        if link.said_hello or self.spec.readiness is Readiness.SDK:
            return True
        return self.spec.readiness is Readiness.AUTO and self._speaks_sdk

    def _close_link(self, slot: Slot) -> None:
        if slot.link is not None:
            self._ctx.channel.close_link(slot.link)
            slot.link = None

    def _read_output(self, slot: Slot, child: Child) -> None:
        logs, settings = self._ctx.logs, self.spec.logs
        sink = logs.open(self.name, slot.index, settings) if logs and settings.enabled else None
        for stream, fd in (("stdout", child.stdout_fd), ("stderr", child.stderr_fd)):
            emit = (
                partial(self._output_line, slot.index, child.pid, stream)
                if settings.events
                else _ignore_line  # the files have it (or the operator wants it nowhere)
            )
            if sink is None:
                LineReader(fd, emit, on_close=lambda: None)
            else:
                sink.read(fd, child.pid, stream, emit)  # to its file, then emit

    def _output_line(self, worker: int, pid: int, stream: str, line: str) -> None:
        log.info("worker_output", bot=self.name, worker=worker, pid=pid, stream=stream, line=line)

    def _on_exit(self, slot: Slot, child: Child, status: restart.Exit) -> None:
        uptime_s = child.uptime_s()
        self.probes.stop(slot)
        self._close_link(slot)
        self._ctx.events.emit(
            "worker_exited",
            bot=self.name,
            worker=slot.index,
            pid=child.pid,
            exit_code=status.code,
            signal=status.signal,
            uptime_s=round(uptime_s, 3),
            expected=slot.stopping or self.halted,
            reason=slot.condemned,
        )
        slot.condemned = ""
        if slot.stopping or self.halted:
            slot.restart_at = 0.0  # the stop task decides; a respawn is fine if still wanted
        else:
            self._ctx.task_group.start_soon(self._end_leftovers, child)
            self._gate_exit(slot, status, uptime_s)
        self.poke()

    def _gate_exit(self, slot: Slot, status: restart.Exit, uptime_s: float) -> None:
        """Count the exit, hold it while a need is down, or ask the needs first."""
        verdict = dependency_gate.on_exit(self._needs.gate, bool(self.spec.needs))
        if verdict is dependency_gate.OnExit.COUNT:
            self._decide(slot, status, uptime_s)
        elif verdict is dependency_gate.OnExit.HOLD:
            slot.restart_at = 0.0  # not counted; due once the gate opens
        else:
            slot.restart_at, slot.held_exit = None, (status, uptime_s)
            self._needs.ask()

    def _on_needs_checked(self, seen: dependency_gate.Observed) -> None:
        """A round of checks: held exits are counted if all answered, else forgotten."""
        for slot in self.slots.values():
            if slot.held_exit is None:
                continue
            (status, uptime_s), slot.held_exit = slot.held_exit, None
            if seen.gate.down:
                slot.restart_at = 0.0
            else:
                self._decide(slot, status, uptime_s)
        if seen.went_down:
            self._ctx.events.emit("bot_waiting", bot=self.name, needs=list(seen.gate.down))
        self.poke()  # on resume, every held slot is due: they start together

    def _decide(self, slot: Slot, status: restart.Exit, uptime_s: float) -> None:
        now = time.monotonic()
        decision = restart.decide(
            self.spec,
            status,
            uptime_s=uptime_s,
            history=slot.history,
            now=now,
            rand=self._rng.random(),
        )
        slot.history = decision.history
        if decision.action is restart.Action.RESTART:
            slot.restart_at = now + decision.delay_s
            slot.restarts += 1
            self.restarts += 1
            self._ctx.events.emit(
                "worker_restarting",
                bot=self.name,
                worker=slot.index,
                delay_s=round(decision.delay_s, 3),
                reason=decision.reason,
            )
        elif decision.action is restart.Action.STAY_DOWN:
            slot.restart_at = None
            self._ctx.events.emit(
                "worker_stayed_down", bot=self.name, worker=slot.index, reason=decision.reason
            )
        else:
            self._fail_slot(slot, decision.reason)

    def _fail_slot(self, slot: Slot, reason: str) -> None:
        """A crash-looping slot stays down on its own; enough of them fail the bot."""
        slot.restart_at = None
        slot.failure = reason
        self._ctx.events.emit(
            "worker_failed", "error", bot=self.name, worker=slot.index, reason=reason
        )
        failed = sum(1 for s in self.slots.values() if s.failure and s.index < self.target)
        if self.failure is None and restart.breaker_tripped(
            failed, self.target, self.spec.fail_bot_at
        ):
            self.failure = f"{failed} of {self.target} workers failed; worker {slot.index} {reason}"
            self._ctx.events.emit("bot_failed", "error", bot=self.name, reason=self.failure)

    async def _end_leftovers(self, child: Child) -> None:
        """A worker died on its own: end what it left in its group, then forget the group."""
        await end_group(child.pgid, self.spec.stop_signal, self.spec.stop_timeout_s)
        self._ctx.guardian.remove(child.pgid)
        self._ctx.changed()

    async def _stop_slot(self, slot: Slot, drain: bool = False) -> None:
        """Stop a worker; with drain, an SDK worker first gets to finish what it holds."""
        child = slot.child
        if child is None:
            return
        if slot.stopping:  # a stop is under way; wait for it to end
            await child.exited.wait()
            return
        slot.stopping = True
        try:
            if drain and self._ask_to_drain(slot, child):
                with anyio.move_on_after(self.spec.stop_timeout_s):
                    await child.exited.wait()
            if child.alive:
                await child.stop(self.spec.stop_signal, self.spec.stop_timeout_s)
        finally:
            slot.stopping = False
            self._ctx.guardian.remove(child.pgid)
            self._ctx.changed()
            self.poke()

    def _ask_to_drain(self, slot: Slot, child: Child) -> bool:
        link = slot.link
        if link is None or not link.said_hello:
            return False  # no SDK: it cannot hear us; the stop signal it is
        if not self._ctx.channel.send(link, [[protocol.DRAIN]]):
            return False
        self._ctx.events.emit("worker_draining", bot=self.name, worker=slot.index, pid=child.pid)
        return True

    # ------------------------------------------------------------ the watchdog

    def check_health(self, now: float) -> None:
        """Readiness of workers without the SDK; kills for silence or never getting ready."""
        for slot in self.slots.values():
            self._check_slot(slot, now)

    def _check_slot(self, slot: Slot, now: float) -> None:
        link, child = slot.link, slot.child
        if link is None or child is None or not slot.alive or slot.stopping or slot.condemned:
            return
        if link.ready and not self.expects_sdk(link):
            return  # ready without the SDK: nothing can change (health.check would say WAIT)
        seen = health.Seen(
            link.started_at, self.expects_sdk(link), link.ready, link.ready_at, link.last_heartbeat
        )
        verdict, reason = health.check(self._limits, seen, now)
        if verdict is health.Verdict.READY:
            link.mark_ready(now)
        elif verdict is not health.Verdict.WAIT:
            if link.messages == 0:
                reason += " (its SDK never connected: see the worker's stderr)"
            self._condemn(slot, child, reason)

    async def _ready_in_due_time(self, slot: Slot, link: WorkerLink) -> None:
        """A one-shot timer per spawn for readiness by delay: no periodic check needed."""
        await anyio.sleep(self.spec.ready_after_s)
        if slot.link is link:
            self._check_slot(slot, time.monotonic())

    def _condemn(self, slot: Slot, child: Child, reason: str) -> None:
        """Kill an unresponsive worker; its exit counts as a failure, so it is restarted."""
        slot.unresponsive += 1
        self._ctx.events.emit(
            "worker_unresponsive", "warning", bot=self.name, worker=slot.index, pid=child.pid,
            reason=reason,
        )  # fmt: skip
        self._kill_unhealthy(slot, child, reason)

    def _kill_unhealthy(self, slot: Slot, child: Child, reason: str) -> None:
        """Stop a worker judged unhealthy (its event already said why); it is restarted."""
        slot.condemned = reason
        self._ctx.task_group.start_soon(child.stop, self.spec.stop_signal, self.spec.stop_timeout_s)

    # ------------------------------------------------------------ operator commands

    async def stop(self, worker: int | None = None) -> None:
        """Stop the bot (or one worker) and wait until it is down. It stays down."""
        slots = [self._slot(worker)] if worker is not None else list(self.slots.values())
        if worker is None:
            self.stopped = True
        if self._spawns_in_flight:  # a worker being forked now must be stopped too
            await self._spawns_done.wait()
        for slot in slots:
            slot.held = slot.held or worker is not None
        await self._stop_all(slots)
        if worker is None:
            self.started_at = None

    async def start(self, worker: int | None = None) -> None:
        """Start what is down: clears failed, stopped and exited; resets backoff."""
        if worker is None:
            self.stopped, self.failure = False, None
        slots = [self._slot(worker)] if worker is not None else list(self.slots.values())
        for slot in slots:
            slot.held, slot.failure = False, ""
            slot.history = restart.History()
            if not slot.alive and slot.restart_at is None:
                slot.restart_at = 0.0
        failed = sum(1 for s in self.slots.values() if s.failure and s.index < self.target)
        if not restart.breaker_tripped(failed, self.target, self.spec.fail_bot_at):
            self.failure = None  # a revived slot can un-trip the breaker
        await self.settle()

    async def restart(self, worker: int | None = None) -> None:
        """Stop, then start again (all workers at once, or one)."""
        await self.stop(worker)
        await self.start(worker)

    async def roll(self) -> bool:
        """A rolling restart: one worker at a time, each new one ready before the next old
        one stops, so at most one fewer than desired is ready. False if a new worker did not
        become ready (the roll stops there: the old ones keep running)."""
        async with self._roll_lock:  # a second roll (another reload) waits for the first
            return await self._roll()

    async def _roll(self) -> bool:
        self._ctx.events.emit("bot_rolling_restart", bot=self.name, workers=self.running)
        for slot in sorted(self.slots.values(), key=lambda s: s.index):
            if slot.index >= self.target or not slot.alive or slot.child is None:
                continue
            old = slot.child
            await self._stop_slot(slot, drain=True)
            if not await self._ready_again(slot, old):
                self._ctx.events.emit(
                    "bot_rolling_restart_stopped", "error", bot=self.name, worker=slot.index,
                    reason=self.failure or "the new worker did not become ready",
                )  # fmt: skip
                return False
        self._ctx.events.emit("bot_rolling_restart_done", bot=self.name)
        return True

    async def _ready_again(self, slot: Slot, old: Child) -> bool:
        """Wait for a new process in the slot to be ready (bounded by the bot's timeouts)."""
        limit = (self.spec.ready_timeout_s or 60.0) + self.spec.ready_after_s + 10.0
        with anyio.move_on_after(limit):
            while not (slot.child is not old and slot.alive and slot.ready):
                if self.failure is not None or self.halted or self.stopped:
                    return False
                await anyio.sleep(_ROLL_POLL_S)  # the stop's own poke has the slot refilled
            return True
        return False

    async def _stop_all(self, slots: list[Slot]) -> None:
        async with anyio.create_task_group() as tg:
            for slot in slots:
                if slot.alive:
                    tg.start_soon(self._stop_slot, slot)

    def _slot(self, worker: int) -> Slot:
        slot = self.slots.get(worker)
        if slot is None:
            raise KeyError(worker)
        return slot


def base_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment every worker starts from: ours, plus the supervisor's addresses."""
    return dict(os.environ) | extra


def _ignore_line(line: str) -> None:
    """Output that goes to the log files only."""
