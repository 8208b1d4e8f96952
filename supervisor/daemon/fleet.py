"""A bot: its group of workers, kept at the desired count.

Each bot runs one task that reconciles desired and actual: it spawns the
slots that should run and may (their backoff is over), and stops the slots
it no longer keeps (the idlest go first on a scale-down: policy/victims.py).
Exits arrive from the reaper as callbacks; the restart decision is
`restart.decide`, pure; the task is woken by every change. Slots and their
derived states are in slots.py.
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

from supervisor.config.model import BotConfig, Kind, Readiness, SpawnMode
from supervisor.config.process import ProcessSettings
from supervisor.daemon.cgroups import CgroupTree
from supervisor.daemon.channel import Channel, WorkerLink
from supervisor.daemon.dependencies import NeedsWatch
from supervisor.daemon.events import Events
from supervisor.daemon.helpers.handles import ForkServer, Guardian
from supervisor.daemon.jobs import ONESHOT_STATES, JobRecord, runs
from supervisor.daemon.logfiles import LogWriter
from supervisor.daemon.output import LineReader
from supervisor.daemon.pacing import Pacer
from supervisor.daemon.probing import BotProbes
from supervisor.daemon.process import Child, Reaper, end_group
from supervisor.daemon.propagation import restart_followers
from supervisor.daemon.resources import BotCgroups
from supervisor.daemon.slots import BotState, Slot, WorkerState, bot_state, candidate, worker_state
from supervisor.policy import (
    dependency_gate,
    health,
    oneshot,
    propagation,
    reconcile,
    restart,
    victims,
)
from supervisor.policy.reload import process_part
from supervisor.wire import protocol

log = structlog.get_logger("supervisor.fleet")

_SPAWNS_PER_TICK = 16  # then let the loop breathe (control requests, exits)
_SPAWN_FAILED_CODE = 127  # what a shell reports for a program that cannot be run
_DEPENDENCY_POLL_S = 0.05  # a waiting bot looks at its dependencies this often
_ROLL_POLL_S = 0.05  # a rolling restart looks for the new worker's readiness this often
_PACED_RECHECK_S = 0.2  # a bot held back by pacing asks again at least this often


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
    cgroups: CgroupTree | None = None  # the supervisor's cgroup subtree (cgroups.py)
    pacer: Pacer | None = None  # max_starting: spawns wait for a place (daemon/pacing.py)
    watch: Callable[[], None] | None = None  # wakes the watchdog: a worker speaks the SDK


class Bot:
    def __init__(self, spec: BotConfig, ctx: FleetContext, pin: int | None = None) -> None:
        self.spec = spec
        self.pin = pin
        self.auto_desired = spec.workers  # the autoscaler moves this
        self._speaks_sdk = False  # a worker of this bot has said HELLO
        self.slots: dict[int, Slot] = {}
        self._kept: tuple[int, ...] = ()  # the slot numbers kept for the desired count
        self._wanted: tuple[tuple[int, ...], frozenset[int]] = ((), frozenset())  # kept, as a set
        self.stopped = False
        self.halted = False  # the supervisor is shutting down: nothing starts any more
        self.failure: str | None = None
        self.restarts = 0
        self.started_at: float | None = None
        self._ctx = ctx
        self._wake = anyio.Event()
        self._next_pass = anyio.Event()
        self._spawns_in_flight = 0
        self._paced = 0  # due workers the pacer held back in the last pass
        self._spawns_done = anyio.Event()
        self._drain_cuts: dict[int, anyio.Event] = {}  # slot -> ends its drain wait at once
        self._rng = random.Random()
        self.dependencies: list[Bot] = []  # set by the supervisor, from spec.depends_on
        self.dependents: list[Bot] = []  # the bots whose depends_on names this one
        self._full_set_at: float | None = None  # the newest start of the last full set
        self.waiting_for: list[str] = []
        self.job = JobRecord() if spec.kind is Kind.ONESHOT else None  # its runs
        if spec.schedule is not None:  # its first run waits for a tick
            self.slots = {i: Slot(i, restart_at=None) for i in range(spec.workers)}
        self._roll_lock = anyio.Lock()
        self._env: dict[str, str] = {}
        self._limits = health.Limits(0, 0, 0)
        self._needs = NeedsWatch(spec.name, spec.needs, ctx.events, self._on_needs_checked)

        self.probes = BotProbes(ctx.reaper, ctx.events, ctx.task_group, self._kill_unhealthy)
        self.cgroups = BotCgroups(ctx.cgroups, spec.name, ctx.events)
        self.update_spec(spec)

    def update_spec(self, spec: BotConfig) -> None:
        """A new spec (a reload): it applies to the workers started from now on; a one-shot
        whose process changed (command, env, ...; not only live settings) runs again."""
        if self.job is not None and process_part(spec) != process_part(self.spec):
            self.run_again()
        if (spec.kind is Kind.ONESHOT) != (self.job is not None):  # a reload changed its kind
            self.job = JobRecord() if spec.kind is Kind.ONESHOT else None
        self.spec = spec
        self.cgroups.configure(spec.resources)
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
    def kept(self) -> tuple[int, ...]:
        """The slot numbers kept for the desired count; on a change the idlest leave."""
        desired = self.desired
        if len(self._kept) != desired:
            shrink = len(self._kept) > desired
            views = {i: candidate(s) for i, s in self.slots.items()} if shrink else {}
            self._kept = victims.resize(self._kept, desired, views)
        return self._kept

    @property
    def wanted(self) -> frozenset[int]:
        """The slots that should run now: the kept ones, none while the bot is stopped.

        Built once per change of `kept`: it is asked per slot in loops over the slots, and
        a new set each time made every spawn of a 200-worker burst cost O(N^2)."""
        kept = self.kept
        if self._wanted[0] is not kept:
            self._wanted = (kept, frozenset(kept))
        return frozenset() if self.stopped else self._wanted[1]

    @property
    def running(self) -> int:
        return sum(1 for s in self.slots.values() if s.alive and not s.stopping)

    @property
    def ready(self) -> int:
        return sum(1 for s in self.slots.values() if s.ready)

    @property
    def starting(self) -> int:
        """Workers spawned and not ready yet (what max_starting caps)."""
        return sum(1 for s in self.slots.values() if s.spawning or _starting(s))

    @property
    def max_starting(self) -> int | None:
        return self.spec.max_starting

    @property
    def needs_down(self) -> list[str]:
        """The bot's `needs` that did not answer the last check."""
        return list(self._needs.gate.down)

    def state(self) -> BotState:
        if (self.waiting_for or self._needs.gate.down) and not (self.stopped or self.halted):
            return BotState.WAITING
        if self.job is not None and not self.stopped:
            return ONESHOT_STATES[self.outcome()]
        state = bot_state(self.slots.values(), self.wanted, self.stopped, self.failure is not None)
        return BotState.DEGRADED if self.cgroups.degraded and state is BotState.RUNNING else state

    @property
    def up(self) -> bool:
        """Every desired worker is ready: what a bot that depends on this one waits for."""
        waiting = self.waiting_for or self._needs.gate.down
        if self.job is not None:  # a one-shot: once its run succeeded
            return not waiting and self.outcome() is oneshot.Outcome.SUCCEEDED
        return not waiting and self.ready >= self.target and not self.stopped

    def outcome(self) -> oneshot.Outcome:
        """A one-shot's run: idle, running, succeeded or failed."""
        return oneshot.outcome(runs(self.slots.values(), self.wanted), self.failure)

    def job_reason(self) -> str:
        """Why a dependent waits on this bot, if it is a one-shot that did not succeed."""
        if self.job is None:
            return ""
        return oneshot.reason(self.name, runs(self.slots.values(), self.wanted), self.failure)

    def run_again(self) -> None:
        """A one-shot runs again (its spec changed, or a tick): every kept slot that is down
        runs once more."""
        for slot in self.slots.values():
            if not slot.alive and not slot.held:
                slot.restart_at, slot.failure, slot.history = 0.0, "", restart.History()
        self.failure = None
        self.poke()

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

    @property
    def waiting_reason(self) -> str:
        """Why it waits, when a one-shot it depends on did not succeed: read now, not at the
        last dependency poll, so it never says "running" of a one-shot already failed."""
        if not self.waiting_for:
            return ""
        return "; ".join(filter(None, (d.job_reason() for d in self.dependencies)))

    async def _reconcile(self) -> None:
        """Start the slots the plan names, then stop or forget those above the target."""
        due = reconcile.to_spawn(self.slots, self.wanted, time.monotonic(), self._blocked)
        if self._ctx.pacer is not None:
            self._paced = len(due)
            due = due[: self._ctx.pacer.take(self, len(due))]
            self._paced -= len(due)
        try:
            await self._spawn_due(due)
        finally:
            if self._ctx.pacer is not None:
                self._ctx.pacer.spawned(self)
        trim = reconcile.to_trim(self.slots, self.wanted, self.kept)
        for index in trim.stop:
            self._ctx.task_group.start_soon(self._stop_slot, self.slots[index], True)
        for index in trim.forget:
            del self.slots[index]

    async def _spawn_due(self, due: list[int]) -> None:
        """Spawn the due slots, letting the loop breathe every few exec spawns."""
        for spawned, index in enumerate(due, start=1):
            if index not in self.wanted:  # scaled down while we let the loop breathe
                break
            self._spawn(self.slots.setdefault(index, Slot(index)))
            exec_spawns = self.spec.spawn is SpawnMode.EXEC  # forks are queued, not done here
            if exec_spawns and spawned % _SPAWNS_PER_TICK == 0:
                await anyio.lowlevel.checkpoint()

    @property
    def _blocked(self) -> bool:
        return self.failure is not None or self.halted or bool(self._needs.gate.down)

    def _next_due(self, now: float) -> float:
        """Seconds until the earliest backoff ends: 0 if one ended during the pass (inf if
        none)."""
        if self._paced:
            return _PACED_RECHECK_S  # the pacer pokes us; this is only a backstop
        return reconcile.next_due(self.slots, self.wanted, now, self._blocked)

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
                self.spec.argv, env, self.spec.cwd, self._ctx.reaper, self.spec.process,
                cgroup=self.cgroups.enter_files(slot.index),
            )  # fmt: skip
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
                self.spec.module, env, self.spec.cwd, title, stop, process=process,
                cgroup=self.cgroups.enter_files(slot.index),
                preload=(self.name, self._env) if self.spec.preload else None,
            )  # fmt: skip
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
            if self.expects_sdk(slot.link):
                self._wake_watchdog()
        child.on_exit = partial(self._on_exit, slot, child)
        self.started_at = self.started_at or child.started_at
        self._ctx.guardian.add(child, self.spec.stop_signal, self.spec.stop_timeout_s)
        self._read_output(slot, child)
        self._ctx.changed()
        self._ctx.events.emit("worker_spawned", bot=self.name, worker=slot.index, pid=child.pid)
        if self.job is not None:
            self.job.started()
        self._note_full_set()
        if slot.link is not None and self.spec.readiness is not Readiness.SDK:
            self._ctx.task_group.start_soon(self._ready_in_due_time, slot, slot.link)
        self.probes.start(self.spec, slot, child, env)

    def _note_full_set(self) -> None:
        """Every desired worker replaced since the last full set: the bot restarted."""
        live = [s.child for s in self.slots.values() if s.index in self.wanted and s.alive]
        starts = [c.started_at for c in live if c is not None]
        restarted, self._full_set_at = propagation.full_set(starts, self.target, self._full_set_at)
        if restarted:
            self._ctx.task_group.start_soon(restart_followers, self, self._ctx.events)

    def _on_ready(self, slot: Slot, link: WorkerLink) -> None:
        if self._ctx.pacer is not None:
            self._ctx.pacer.released()
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
        self._wake_watchdog()

    def watched(self) -> bool:
        """Has it a live worker whose health is the SDK's to tell (what the watchdog judges)?"""
        return any(
            s.link is not None and s.alive and self.expects_sdk(s.link) for s in self.slots.values()
        )

    def _wake_watchdog(self) -> None:
        if self._ctx.watch is not None:
            self._ctx.watch()

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
        oom = self.cgroups.exited(slot.index, child.pid, status)
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
            reason=slot.condemned or ("oom" if oom else ""),
        )
        slot.condemned = ""
        slot.last_exit = (status.code, status.signal)
        if self.job is not None:
            self.job.exited(status, uptime_s)
        if self._ctx.pacer is not None:
            self._ctx.pacer.released()
        if slot.stopping or self.halted:
            slot.restart_at = 0.0  # the stop task decides; a respawn is fine if still wanted
        else:
            self._ctx.task_group.start_soon(self._end_leftovers, child, slot.index)
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
        failed = sum(1 for s in self.slots.values() if s.failure and s.index in self.wanted)
        if self.failure is None and restart.breaker_tripped(
            failed, self.target, self.spec.fail_bot_at
        ):
            self.failure = f"{failed} of {self.target} workers failed; worker {slot.index} {reason}"
            self._ctx.events.emit("bot_failed", "error", bot=self.name, reason=self.failure)

    async def _end_leftovers(self, child: Child, slot: int) -> None:
        """A worker died on its own: end what it left in its group, then forget the group."""
        deadline = time.monotonic() + self.spec.stop_timeout_s
        self.cgroups.signal(slot, self.spec.stop_signal)
        await end_group(child.pgid, self.spec.stop_signal, self.spec.stop_timeout_s)
        await self.cgroups.end(slot, deadline)
        self._ctx.guardian.remove(child)
        self._ctx.changed()

    async def _stop_slot(self, slot: Slot, drain: bool = False) -> None:
        """Stop a worker; with drain, an SDK worker first gets to finish what it holds."""
        child = slot.child
        if child is None:
            return
        if slot.stopping:  # a stop is under way; wait for it to end
            # A stop (shutdown, `stop`) while it drains does not wait out the drain: the
            # other workers get their stop signal now, and so does this one.
            if (cut := self._drain_cuts.get(slot.index)) is not None:
                cut.set()
            await child.exited.wait()
            return
        slot.stopping = True
        deadline = time.monotonic() + self.spec.stop_timeout_s * (2 if drain else 1)
        try:
            if drain and self._ask_to_drain(slot, child):
                await self._wait_drained(slot, child)
            if child.alive:
                self.cgroups.signal(slot.index, self.spec.stop_signal)
                await child.stop(self.spec.stop_signal, self.spec.stop_timeout_s)
            await self.cgroups.end(slot.index, deadline)
        finally:
            slot.stopping = False
            self._ctx.guardian.remove(child)
            self._ctx.changed()
            self.poke()

    async def _wait_drained(self, slot: Slot, child: Child) -> None:
        """Until the worker exits, stop_timeout_s passes, or another stop cuts the drain."""
        over = self._drain_cuts[slot.index] = anyio.Event()

        async def exit_ends_it() -> None:
            await child.exited.wait()
            over.set()

        try:
            with anyio.move_on_after(self.spec.stop_timeout_s):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(exit_ends_it)
                    await over.wait()
                    tg.cancel_scope.cancel()
        finally:
            self._drain_cuts.pop(slot.index, None)

    def _ask_to_drain(self, slot: Slot, child: Child) -> bool:
        link = slot.link
        if link is None or not link.said_hello:
            return False  # no SDK: it cannot hear us; the stop signal it is
        if not self._ctx.channel.send(link, [[protocol.DRAIN]]):
            return False
        self._ctx.events.emit("worker_draining", bot=self.name, worker=slot.index, pid=child.pid)
        return True

    # ------------------------------------------------------------ the watchdog

    def check_health(self, now: float, kill: bool = True) -> None:
        """Readiness of workers without the SDK; kills for silence or never getting ready
        (not with kill=False: the watchdog just woke from a pause and cannot judge silence)."""
        for slot in self.slots.values():
            self._check_slot(slot, now, kill)

    def _check_slot(self, slot: Slot, now: float, kill: bool = True) -> None:
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
        elif verdict is not health.Verdict.WAIT and kill:
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
            deadline = time.monotonic() + self.spec.stop_timeout_s
            await self.cgroups.end(None, deadline, self.spec.stop_signal)

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
        failed = sum(1 for s in self.slots.values() if s.failure and s.index in self.wanted)
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
        if self.job is not None:
            return True  # a one-shot is not rolled: a changed one runs again (update_spec)
        async with self._roll_lock:  # a second roll (another reload) waits for the first
            return await self._roll()

    async def _roll(self) -> bool:
        self._ctx.events.emit("bot_rolling_restart", bot=self.name, workers=self.running)
        for slot in sorted(self.slots.values(), key=lambda s: s.index):
            if slot.index not in self.wanted or not slot.alive or slot.child is None:
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

    async def end_run(self) -> None:
        """Stop a one-shot's running workers (overlap = "replace"); the bot is not stopped."""
        await self._stop_all([s for s in self.slots.values() if s.alive])

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


def _starting(slot: Slot) -> bool:
    return slot.alive and not slot.stopping and not slot.ready


def _ignore_line(line: str) -> None:
    """Output that goes to the log files only."""
