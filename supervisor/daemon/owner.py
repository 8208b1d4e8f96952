"""The owner: builds the fleet, runs the loop, answers the control socket.

    run()  lock run_dir -> end the last run's leftovers -> subreaper, signals,
           guardian -> control socket -> bots start in config order -> ...
           shutdown: bots stop in reverse order, strays are ended, state saved.

Everything is one anyio task group on the asyncio loop: a task per bot, one
for the control socket, one that saves state. Signal handlers only set
events or run the reaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
import structlog

from supervisor import __version__
from supervisor.config import model as config_module
from supervisor.config.model import BotConfig, Config
from supervisor.config.rundir import control_path
from supervisor.daemon import sdnotify, stacks, state
from supervisor.daemon.autoscaler import Autoscaler
from supervisor.daemon.cgroups import CgroupTree
from supervisor.daemon.channel import Channel
from supervisor.daemon.commands import Commands
from supervisor.daemon.endpoints import WorkerEndpoints
from supervisor.daemon.events import Events
from supervisor.daemon.fleet import Bot, FleetContext, base_env
from supervisor.daemon.helpers import guardian
from supervisor.daemon.helpers.handles import ForkServer, Guardian
from supervisor.daemon.logfiles import LogWriter
from supervisor.daemon.memory import Trimmer
from supervisor.daemon.pacing import Pacer
from supervisor.daemon.plugin_host import SupervisorHost
from supervisor.daemon.plugin_runner import PluginRunner
from supervisor.daemon.process import Reaper, become_subreaper, end_strays
from supervisor.daemon.remote import RemoteControl
from supervisor.daemon.schedules import ScheduleRunner
from supervisor.daemon.signals import Signals
from supervisor.daemon.slots import BotState
from supervisor.daemon.status import full_status
from supervisor.daemon.stops import Stops
from supervisor.errors import AlreadyRunningError, CommandError, ConfigError, ProtocolError
from supervisor.policy.admission import Admission
from supervisor.wire import protocol
from supervisor.wire.transport import (
    ControlServer,
    EventPublisher,
    WorkerServer,
    close_context,
    endpoint,
    new_context,
)

if TYPE_CHECKING:
    import zmq.asyncio

    from supervisor.policy.reload import Plan

log = structlog.get_logger("supervisor")
_BUSY = {
    "rate_limited": "too many requests from this client; slow down",
    "peer_busy": "this client has too many requests being answered; wait for the replies",
    "overloaded": "the supervisor is answering too many requests; retry shortly",
}

_SAVE_EVERY_S = 0.2  # live process groups are saved at most this often
_STRAY_TIMEOUT_S = 2.0
_KILL_WAIT_S = 5.0
_REPLY_WAIT_S = 2.0  # at shutdown, for the last replies to get out
_WATCHDOG_TICK_S = (0.1, 2.5)  # at least, at most: four checks per shortest SDK timeout
_LAG_TICK_S = 1.0
_LAG_WARN_S = 0.25
_MEMORY_CHECK_S = 2.0  # max_memory_mb without the monitor
_FORWARDED = (signal.SIGUSR1, signal.SIGUSR2)  # to every worker (SIGTERM/SIGINT stop the fleet)
_LOG_DRAIN_S = 2.0  # at shutdown, for the last output of stopped workers to reach the files


EarlyForkServer = tuple[subprocess.Popen[bytes], socket.socket]


class Supervisor:
    def __init__(self, config: Config, early_fork_server: EarlyForkServer | None = None) -> None:
        self.config = config
        self._early_fork_server = early_fork_server
        self.run_dir = config.supervisor.run_dir
        self.reaper = Reaper()
        self.guardian = Guardian(self.reaper)
        self.fork_server = ForkServer(self.reaper)
        self.cgroups = CgroupTree(self.run_dir, self.guardian)  # made when a bot needs a group
        self.logs = LogWriter(self.run_dir / "logs")
        self.notifier = sdnotify.Notifier(None)  # systemd's, if it started us: see run()
        self.bots: dict[str, Bot] = {}
        self.autoscalers: dict[str, Autoscaler] = {}
        self.plugin_host = SupervisorHost(self)
        self.loop_lag_s = 0.0
        self.pins: dict[str, int] = {}
        self.stops = Stops()  # bots and workers stopped by hand, saved with the pins
        self.started_at = time.monotonic()
        self.rejected_frames: dict[str, int] = {}
        self.state_save_error = ""  # why the last save of state.json failed; "" if it did not
        self.admission = Admission()  # control requests per peer (policy/admission.py)
        self.trimmer = Trimmer(self._frames_taken)
        self.events = Events()
        self.fork_server.on_notice = lambda event, level, fields: self.events.emit(
            event, level, **fields
        )
        self.channel: Channel | None = None
        self.shutdown_requested = anyio.Event()
        self._control_server: ControlServer | None = None
        self._signals: Signals | None = None
        self.fleet_down = anyio.Event()
        self._dirty = anyio.Event()
        self._save_lock = anyio.Lock()
        self._inflight = 0
        self._idle = anyio.Event()
        self._tg: anyio.abc.TaskGroup
        self._fleet_ctx: FleetContext
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._reload_lock = anyio.Lock()
        self._reloaded = anyio.Event()  # set and replaced by each reload: timers asleep wake
        self._watch_wanted = anyio.Event()  # the watchdog has workers to judge again
        self._plugins_listening = False
        self.plugin_host.commands = Commands(self)  # dashboard actions (behind the monitor's auth)
        remote_settings = config.supervisor.remote
        self.remote = (
            None
            if remote_settings is None
            else RemoteControl(remote_settings, Commands(self), self)
        )

    # ------------------------------------------------------------ the run

    async def run(self) -> None:
        """Run the fleet until shutdown is requested; then stop it all."""
        lock = self._lock_run_dir()
        context = new_context()
        sockets: list[ControlServer | WorkerServer | EventPublisher] = []
        try:
            self._end_leftovers()
            self._start_outputs()
            self.guardian.start()
            if self.config.uses_fork_server:
                self.fork_server.start(self._early_fork_server)
            self._install_signals()  # reaps at once anything that already exited
            control = ControlServer(context, control_path(self.run_dir))
            workers = WorkerServer(context, self.run_dir / "workers")
            publisher = EventPublisher(context, self.run_dir / "events")
            sockets += [control, workers, publisher]
            self.events.bind(publisher)
            self.channel = Channel(workers, self.events, on_receive=self.trimmer.arrived)
            endpoints = WorkerEndpoints(self.run_dir, workers)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._build_fleet(tg, self.channel, endpoints)
                self._start_control(tg, control, context)
                tg.start_soon(self.channel.run)
                tg.start_soon(self._watchdog)
                tg.start_soon(self._save_loop)
                for name in self.bots:
                    self._start_bot(name)
                self._start_plugins()
                tg.start_soon(self._watch_loop_lag)
                tg.start_soon(self._guard_memory)
                tg.start_soon(self.trimmer.run)  # RSS back after a flood (daemon/memory.py)
                self._announce_started(tg)
                await self.shutdown_requested.wait()
                await self._stop_fleet()
                await self._wait_replies()
                tg.cancel_scope.cancel()
        except Exception:
            log.exception("supervisor_crashed")
            raise
        finally:
            self.events.bind(None)
            for sock in sockets:
                sock.close()
            close_context(context)  # waits for the sockets' linger: the last replies get out
            # Unless the fleet was stopped, the helpers end it: that is their job.
            clean = self.fleet_down.is_set()
            self._close_helpers(clean)
            self._close_outputs()
            self._save_at_exit()
            self._remove_signals()
            lock.close()
            log.info("supervisor_stopped")

    def _close_helpers(self, clean: bool) -> None:
        """The fork server goes; the guardian goes too, ending the fleet unless it is down
        (and then the cgroups with what is left in them: otherwise that is the guardian's)."""
        self.fork_server.close()
        self.guardian.close(clean)
        if clean:
            self.cgroups.close()

    def _start_outputs(self) -> None:
        """Log files, and systemd's notify socket (taken out of the env workers copy)."""
        self.notifier = sdnotify.Notifier.from_environ(os.environ)
        self.logs.start()

    def _close_outputs(self) -> None:
        self.logs.close()
        self.notifier.close()

    def _announce_started(self, tg: anyio.abc.TaskGroup) -> None:
        """Say we run; tell systemd (READY=1) once the fleet is up, and keep its watchdog fed."""
        tg.start_soon(sdnotify.serve, self.notifier, self._bots_starting)
        self.events.emit("supervisor_started", pid=os.getpid(), run_dir=str(self.run_dir))

    def _lock_run_dir(self) -> IO[str]:
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o700)
        lock = open(self.run_dir / "supervisor.pid", "a+")  # noqa: SIM115  (held for the whole run)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            lock.close()
            raise AlreadyRunningError(
                f"another supervisor (pid {pid}) is running with run_dir {self.run_dir}"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return lock

    def _end_leftovers(self) -> None:
        """Last resort after a kill -9 that the guardian did not survive either."""
        previous = state.load(self._state_path)
        self.pins = {b: n for b, n in previous.pins.items() if b in self.config.bots}
        self.stops = Stops.restored(previous.stopped, previous.held, set(self.config.bots))
        if previous.groups:
            marker = f"SUPERVISOR_RUN_DIR={self.run_dir}".encode()
            ended = guardian.end_groups(previous.groups, marker)
            if ended:
                log.warning("leftovers_ended", groups=ended)

    def _build_fleet(
        self, tg: anyio.abc.TaskGroup, channel: Channel, endpoints: WorkerEndpoints
    ) -> None:
        env = base_env(
            {
                "SUPERVISOR_PID": str(os.getpid()),
                "SUPERVISOR_RUN_DIR": str(self.run_dir),
                "SUPERVISOR_CONTROL": endpoint(control_path(self.run_dir)),
                "SUPERVISOR_WORKERS": endpoints.main,  # bots of other users: their own
                "SUPERVISOR_EVENTS": endpoint(self.run_dir / "events"),
            }
        )
        for plugin in self.config.plugins.values():
            env |= plugin.cls.worker_env(plugin.settings)
        self._fleet_ctx = FleetContext(
            reaper=self.reaper,
            guardian=self.guardian,
            fork_server=self.fork_server,
            channel=channel,
            events=self.events,
            task_group=tg,
            base_env=env,
            changed=self.mark_dirty,
            logs=self.logs,
            worker_endpoint=endpoints.for_process,
            cgroups=self.cgroups,
            pacer=Pacer(self.config.supervisor.max_starting, self.bots.values),
            watch=self._watch_wanted_set,
        )
        for spec in self.config.bots.values():  # in start order: dependencies first
            self._add_bot(spec)
        self._link_dependencies()

    def _add_bot(self, spec: BotConfig) -> Bot:
        """A bot (and its autoscaler) as the config has it; _start_bot runs them."""
        bot = self.bots[spec.name] = Bot(spec, self._fleet_ctx, self.pins.get(spec.name))
        self.stops.apply(bot)
        if spec.scale is not None:
            self.autoscalers[spec.name] = Autoscaler(bot, spec.scale, self.events)
        return bot

    def _start_bot(self, name: str) -> None:
        self._start_scoped(f"bot:{name}", self.bots[name].run)
        self._start_schedule(self.bots[name])
        autoscaler = self.autoscalers.get(name)
        if autoscaler is not None:
            self._start_scoped(f"autoscaler:{name}", autoscaler.run)

    def _link_dependencies(self) -> None:
        for bot in self.bots.values():
            bot.dependencies = [self.bots[d] for d in bot.spec.depends_on]
            bot.dependents = [b for b in self.bots.values() if bot.name in b.spec.depends_on]

    def _bots_starting(self) -> list[str]:
        """The bots still coming up; when none is, the fleet is up (systemd's READY=1).

        A bot waiting for others is coming up unless one of those will not (failed, stopped).
        """

        def coming_up(bot: Bot) -> bool:
            state = bot.state()
            if state is BotState.WAITING:
                return all(d.state() is BotState.RUNNING or coming_up(d) for d in bot.dependencies)
            return state is BotState.STARTING

        return [b.name for b in self.bots.values() if coming_up(b)]

    def _start_plugins(self, names: Iterable[str] | None = None) -> None:
        """Start the config's plugins (or those named): their tasks, their message kinds."""
        for name in self.config.plugins if names is None else names:
            spec = self.config.plugins[name]
            runner = PluginRunner(spec.cls(spec.settings), self.plugin_host)
            self.plugin_host.runners.append(runner)
            for kind, check in spec.cls.message_kinds.items():
                protocol.register_kind(kind, check)
                if self.channel is not None:
                    handler = partial(self.plugin_host.on_message, runner)
                    self.channel.plugin_handlers[kind] = handler
            self._start_scoped(f"plugin:{name}", runner.run)
        if self.plugin_host.runners and not self._plugins_listening:
            self.events.listen(self._to_plugins)
            self._plugins_listening = True

    def _to_plugins(self, event: str, fields: dict[str, Any]) -> None:
        for runner in self.plugin_host.runners:
            if runner.wants(event):
                runner.deliver(event, fields)

    async def _watch_loop_lag(self) -> None:
        """Say so when something held the loop: a plugin's hook, a slow disk, a bug.

        Only while plugins run (their hooks are the code in our loop we do not control):
        without them an idle fleet wakes no timer of ours.
        """
        while True:
            if not self.plugin_host.runners:
                self.loop_lag_s = 0.0
                await self._reloaded.wait()  # a reload may bring plugins
                continue
            before = time.monotonic()
            await anyio.sleep(_LAG_TICK_S)
            lag_s = time.monotonic() - before - _LAG_TICK_S
            self.loop_lag_s = max(self.loop_lag_s * 0.9, lag_s)
            if lag_s > _LAG_WARN_S:
                log.warning("loop_stalled", lag_s=round(lag_s, 3))

    async def _guard_memory(self) -> None:
        """Restart workers above their bot's max_memory_mb. With a plugin that samples memory
        (the monitor), its samples are used at its interval; else /proc/PID/stat every 2 s."""
        while True:
            if not any(b.max_memory_mb > 0 for b in self.config.bots.values()):
                await self._reloaded.wait()  # no timer while no bot has a limit
                continue
            sampler = self.plugin_host.memory_sampler()
            interval_s = sampler.sample_interval_s if sampler is not None else None
            await anyio.sleep(interval_s or _MEMORY_CHECK_S)
            for bot in list(self.bots.values()):
                limit = bot.spec.max_memory_mb
                if limit <= 0 or bot.halted:
                    continue
                for slot in list(bot.slots.values()):
                    child = slot.child
                    if child is None or not slot.alive or slot.stopping or slot.held:
                        continue
                    rss_mb = sampler.rss_mb(child.pid) if sampler is not None else None
                    if rss_mb is None:
                        rss_mb = child.rss_bytes() / 2**20
                    if rss_mb > limit:
                        self.events.emit(
                            "worker_over_memory", "warning", bot=bot.name, worker=slot.index,
                            pid=child.pid, rss_mb=round(rss_mb, 1), max_memory_mb=limit,
                        )  # fmt: skip
                        slot.held = True  # one restart at a time per worker
                        self._tg.start_soon(bot.restart, slot.index)

    async def _watchdog(self) -> None:
        """Heartbeat and ready-timeout checks of SDK workers, four per shortest timeout.

        Readiness by delay needs no tick: each spawn sets a one-shot timer. While no worker
        speaks the SDK (or no timeout is set) there is nothing to judge, and no tick.
        """
        low, high = _WATCHDOG_TICK_S
        blind_until = 0.0
        while True:
            timeouts = self._sdk_timeouts()  # again each time: a reload may bring shorter ones
            if not timeouts or not any(b.watched() for b in self.bots.values()):
                await self._watch_wanted.wait()  # a spawn or HELLO of the SDK, or a reload
                self._watch_wanted = anyio.Event()
                continue
            tick = max(low, min([high, *(t / 4 for t in timeouts)]))
            before = time.monotonic()
            await anyio.sleep(tick)
            now = time.monotonic()
            # A tick far later than asked: the supervisor was stopped (SIGSTOP, a frozen VM
            # or cgroup) or its loop stalled, and the heartbeats of that time are still
            # queued, unread. Judging now would kill every SDK worker at once; instead give
            # them one timeout from now (a worker really dead is still caught then). Workers
            # without the SDK are still marked ready meanwhile: only kills wait.
            if (paused_s := now - before - tick) > max(1.0, tick):
                blind_until = now + max(timeouts, default=0.0)
                log.warning("supervisor_was_paused", paused_s=round(paused_s, 1))
            for bot in self.bots.values():
                bot.check_health(now, kill=now >= blind_until)

    def _watch_wanted_set(self) -> None:
        self._watch_wanted.set()  # the event of now: the watchdog replaces it as it wakes

    def _sdk_timeouts(self) -> list[float]:
        """The heartbeat and ready timeouts the watchdog judges (0 is none)."""
        bots = self.config.bots.values()
        return [t for b in bots for t in (b.heartbeat_timeout_s, b.ready_timeout_s) if t > 0]

    async def _stop_fleet(self) -> None:
        """Bots stop in the reverse of start order, within shutdown_timeout_s."""
        self.events.emit("supervisor_stopping")
        self.notifier.send("STOPPING=1")
        for bot in self.bots.values():
            bot.halted = True  # from now on an exit is no crash, and nothing restarts
        with anyio.move_on_after(self.config.supervisor.shutdown_timeout_s) as scope:
            for bot in reversed(self.bots.values()):
                await bot.stop()
        if scope.cancelled_caught:
            self.events.emit(
                "shutdown_timed_out", "warning", after_s=self.config.supervisor.shutdown_timeout_s
            )
            await self._kill_everything()
        helpers = {self.guardian.pid or -1, self.fork_server.pid or -1}
        strays = await end_strays(helpers, _STRAY_TIMEOUT_S)
        if strays:
            self.events.emit("strays_ended", count=strays)
        await self.logs.drain(_LOG_DRAIN_S)  # the last words of stopped workers
        self.fleet_down.set()

    async def _kill_everything(self) -> None:
        children = [s.child for b in self.bots.values() for s in b.slots.values() if s.alive]
        for child in children:
            if child is not None:
                child.signal(signal.SIGKILL)
        with anyio.move_on_after(_KILL_WAIT_S):
            for child in children:
                if child is not None:
                    await child.exited.wait()

    # ------------------------------------------------------------ signals

    def _install_signals(self) -> None:
        """Not asyncio's add_signal_handler: its wake-up socket overflows when thousands of
        workers exit at once, and then signals are lost or the process hangs (daemon/signals.py)."""
        become_subreaper()
        self._signals = signals = Signals(asyncio.get_running_loop())
        signals.add(signal.SIGCHLD, self.reaper.reap)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signals.add(sig, partial(self._on_stop_signal, sig))
        signals.add(signal.SIGHUP, self._on_hangup)
        for sig in _FORWARDED:
            signals.add(sig, partial(self._forward_signal, sig))
        stacks.install(signals)  # kill -QUIT: where every thread and task is (daemon/stacks.py)
        self.reaper.reap()  # anything that exited before the handler was in place

    def _remove_signals(self) -> None:
        if self._signals is not None:
            stacks.remove()
            self._signals.close()
            self._signals = None

    def _on_stop_signal(self, sig: int) -> None:
        if not self.shutdown_requested.is_set():
            self.events.emit("shutdown_requested", signal=signal.Signals(sig).name)
            self.shutdown_requested.set()
            return
        if sig != signal.SIGINT:
            # SIGTERM may come from several places at once (a service manager, make,
            # timeout); only an operator pressing Ctrl-C again means "now".
            return
        self.events.emit("shutdown_forced", "warning", signal=signal.Signals(sig).name)
        for bot in self.bots.values():
            bot.halted = True
            for slot in bot.slots.values():
                if slot.child is not None:
                    slot.child.signal(signal.SIGKILL)

    def _forward_signal(self, sig: int) -> None:
        """Pass it on to every worker's group, as an init (tini, dumb-init) would."""
        children = [s.child for b in self.bots.values() for s in b.slots.values() if s.alive]
        for child in children:
            if child is not None:
                child.signal(sig)
        self.events.emit("signal_forwarded", signal=signal.Signals(sig).name, workers=len(children))

    def _on_hangup(self) -> None:
        self._tg.start_soon(self._reload_on_signal)

    async def _reload_on_signal(self) -> None:
        with contextlib.suppress(CommandError):  # reload_failed is logged already
            await self.reload()

    # ------------------------------------------------------------ reload

    def _start_scoped(self, key: str, run: Callable[[], Awaitable[None]]) -> None:
        """A long-lived task that a reload may cancel on its own (a bot, a plugin, ...)."""
        scope = self._scopes[key] = anyio.CancelScope()

        async def scoped() -> None:
            with scope:
                await run()

        self._tg.start_soon(scoped, name=key)

    def _cancel_scoped(self, key: str) -> None:
        scope = self._scopes.pop(key, None)
        if scope is not None:
            scope.cancel()

    async def reload(self) -> dict[str, Any]:
        """Reload, with systemd told: RELOADING=1, then READY=1 (also when the file is bad)."""
        self.notifier.send(*sdnotify.reloading())
        try:
            return await self._reload()
        finally:
            self.notifier.send("READY=1")

    async def _reload(self) -> dict[str, Any]:
        """Read the config file again and apply the difference (see reload.py).

        A bad file changes nothing: CommandError with every problem. Bots are added, updated
        and removed before this returns; rolling restarts go on in the background (their
        events tell when each is done).
        """
        from supervisor.policy import reload  # noqa: PLC0415

        try:
            new = config_module.load(self.config.path)
        except ConfigError as e:
            self.events.emit("reload_failed", "error", problems=e.problems)
            raise CommandError("bad_config", "\n".join(e.problems)) from None
        async with self._reload_lock:
            plan = reload.plan(self.config, new)
            if plan.needs_restart:
                log.warning("reload_needs_restart", keys=list(plan.needs_restart))
            old_bots = self.bots
            self.config = new
            if self._fleet_ctx.pacer is not None:
                self._fleet_ctx.pacer.cap = new.supervisor.max_starting
            for name in plan.removed:
                await self._remove_bot(old_bots[name])
            self.bots = {}
            for name, spec in new.bots.items():  # in the new start order
                bot = old_bots.get(name)
                if bot is None:
                    self._add_bot(spec)
                    self._start_bot(name)
                else:
                    self.bots[name] = bot
                    if spec != bot.spec:
                        self._update_autoscaler(bot, spec)
                        schedule_changed = spec.schedule != bot.spec.schedule
                        bot.update_spec(spec)
                        if schedule_changed:
                            self._start_schedule(bot)
            self._link_dependencies()
            if new.uses_fork_server and self.fork_server.pid is None:
                self.fork_server.start(None)
            self._reload_plugins(plan)
            for name in plan.restarted:
                self._tg.start_soon(self.bots[name].roll)
        self._reloaded.set()
        self._reloaded = anyio.Event()
        self._watch_wanted.set()
        self.events.emit("config_reloaded", "info", **plan.as_dict())
        return plan.as_dict()

    async def _remove_bot(self, bot: Bot) -> None:
        self._cancel_scoped(f"autoscaler:{bot.name}")
        self._cancel_scoped(f"schedule:{bot.name}")
        self.autoscalers.pop(bot.name, None)
        await bot.stop()
        await self.logs.retire(bot.name, _LOG_DRAIN_S)  # its files are closed
        self._cancel_scoped(f"bot:{bot.name}")
        self.pins.pop(bot.name, None)
        self.stops.forget(bot.name)
        if self._fleet_ctx.pacer is not None:
            self._fleet_ctx.pacer.forget(bot.name)
        self.mark_dirty()
        self.events.emit("bot_removed", bot=bot.name)

    def _start_schedule(self, bot: Bot) -> None:
        """A one-shot on a schedule gets its runner (daemon/schedules.py); a reload renews it."""
        self._cancel_scoped(f"schedule:{bot.name}")
        if bot.spec.schedule is not None:
            runner = ScheduleRunner(bot, bot.spec.schedule, self.events, self.run_dir)
            self._start_scoped(f"schedule:{bot.name}", runner.run)

    def _update_autoscaler(self, bot: Bot, spec: BotConfig) -> None:
        if spec.scale == bot.spec.scale:
            return
        self._cancel_scoped(f"autoscaler:{bot.name}")
        self.autoscalers.pop(bot.name, None)
        if spec.scale is not None:
            autoscaler = self.autoscalers[bot.name] = Autoscaler(bot, spec.scale, self.events)
            self._start_scoped(f"autoscaler:{bot.name}", autoscaler.run)

    def _reload_plugins(self, plan: Plan) -> None:
        for name in (*plan.plugins_stopped, *plan.plugins_restarted):
            self._cancel_scoped(f"plugin:{name}")
            for runner in [r for r in self.plugin_host.runners if r.name == name]:
                self.plugin_host.runners.remove(runner)
                if self.channel is not None:  # its message kinds go nowhere now
                    for kind in runner.plugin.message_kinds:
                        self.channel.plugin_handlers.pop(kind, None)
        self._start_plugins((*plan.plugins_restarted, *plan.plugins_started))

    # ------------------------------------------------------------ control socket

    def _start_control(
        self, tg: anyio.abc.TaskGroup, control: ControlServer, context: zmq.asyncio.Context
    ) -> None:
        tg.start_soon(self._serve_control, control, tg)
        if self.remote is not None:  # [supervisor] remote: the CURVE endpoint (daemon/remote.py)
            tg.start_soon(self.remote.serve, context, tg)

    async def _serve_control(self, server: ControlServer, tg: anyio.abc.TaskGroup) -> None:
        commands = Commands(self)
        self._control_server = server
        missed = 0
        while True:
            envelope, payload = await server.recv()
            if server.missed_wakeups != missed:  # found by the stall check (wire/transport.py)
                missed = server.missed_wakeups
                log.warning("control_wakeup_missed", count=missed)
            self.trimmer.arrived()
            # A queued flood makes recv return at once, without yielding: let the loop run.
            await anyio.lowlevel.checkpoint()
            peer = envelope[0] if envelope else b""
            if refused := self.admission.admit(peer, time.monotonic()):  # policy/admission.py
                reply = protocol.Reply(0, False, error_code=refused, error_message=_BUSY[refused])
                await server.send(envelope, protocol.encode_reply(reply))
                continue
            try:
                request = protocol.decode_request(payload)
            except ProtocolError as e:
                self.admission.done(peer)
                self._reject("control", str(e))
                reply = protocol.Reply(0, False, error_code="bad_request", error_message=str(e))
                await server.send(envelope, protocol.encode_reply(reply))
                continue
            self._inflight += 1
            tg.start_soon(self._answer, server, envelope, request, commands)

    async def _answer(
        self,
        server: ControlServer,
        envelope: list[bytes],
        request: protocol.Request,
        commands: Commands,
    ) -> None:
        try:
            result = await commands.dispatch(request.cmd, request.args)
            reply = protocol.Reply(request.id, True, result)
        except CommandError as e:
            reply = protocol.Reply(request.id, False, error_code=e.code, error_message=str(e))
        except Exception as e:
            log.exception("command_crashed", cmd=request.cmd)
            reply = protocol.Reply(request.id, False, error_code="internal", error_message=repr(e))
        try:
            await server.send(envelope, protocol.encode_reply(reply))
        finally:
            self.admission.done(envelope[0] if envelope else b"")
            self._reply_done()

    @contextlib.contextmanager
    def replying(self) -> Iterator[None]:
        """Held while a (remote) command runs: shutdown waits for its reply to get out."""
        self._inflight += 1
        try:
            yield
        finally:
            self._reply_done()

    def _reply_done(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    async def _wait_replies(self) -> None:
        with anyio.move_on_after(_REPLY_WAIT_S):
            while self._inflight:
                self._idle = anyio.Event()
                await self._idle.wait()

    def _reject(self, socket_name: str, reason: str) -> None:
        count = self.rejected_frames[socket_name] = self.rejected_frames.get(socket_name, 0) + 1
        if count & (count - 1) == 0:  # 1, 2, 4, 8, ... as the channel does: a flood of bad
            log.warning("frame_rejected", socket=socket_name, reason=reason, count=count)

    # ------------------------------------------------------------ state

    @property
    def _state_path(self) -> Path:
        return self.run_dir / "state.json"

    def _save(self) -> None:
        state.save(self._state_path, self._snapshot())

    def _snapshot(self) -> state.State:
        stopped, held = self.stops.saved()
        return state.State(dict(self.pins), self.guardian.groups(), stopped, held)

    def _save_at_exit(self) -> None:
        try:
            self._save()
        except OSError as e:  # a full disk: the pins are lost, the exit is still clean
            log.warning("state_save_failed", path=str(self._state_path), error=str(e))

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def save_state(self) -> str:
        """Save now. fsync takes milliseconds, so a thread does it; saves run one at a
        time, each with a snapshot taken when its turn comes, so the newest state wins.

        A disk that is full (or gone read-only) is not fatal: "" if saved, else the error,
        said once per run of failures, and the save loop tries again until it works."""
        async with self._save_lock:
            snapshot = self._snapshot()
            try:
                await anyio.to_thread.run_sync(state.save, self._state_path, snapshot)
            except OSError as e:
                if not self.state_save_error:
                    log.warning("state_save_failed", path=str(self._state_path), error=str(e))
                self.state_save_error = e.strerror or str(e)
                self._dirty.set()  # the save loop retries
                return self.state_save_error
            if self.state_save_error:
                log.info("state_saved_again", path=str(self._state_path))
                self.state_save_error = ""
            return ""

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            await self.save_state()
            await anyio.sleep(_SAVE_EVERY_S)

    def status(self, bot_name: str | None, now: float) -> dict[str, Any]:
        """What `status --json` prints: every bot, or the one named."""
        bots = [self.bots[bot_name]] if bot_name is not None else list(self.bots.values())
        plugins = self.plugin_host.plugin_statuses()
        return full_status(self.status_header(), bots, self.autoscalers, plugins, now)

    def status_header(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "config": str(self.config.path),
            "run_dir": str(self.run_dir),
            "helpers": {"guardian": self.guardian.pid, "fork_server": self.fork_server.pid},
            "control": {
                "rejected": dict(self.rejected_frames),
                "missed_wakeups": self._control_server.missed_wakeups
                if self._control_server
                else 0,
                **self.admission.stats(),
            },
            "remote": self.remote.stats() if self.remote is not None else None,
            "workers": self.channel.stats() if self.channel else {},
            "events_published": self.events.published,
            "loop_lag_s": round(self.loop_lag_s, 4),
            "state_save_error": self.state_save_error,  # pins not on disk yet: why
            "log_write_failures": self.logs.failed_writes,  # batches of lines lost (disk full)
            "pacing": self._fleet_ctx.pacer.status() if self._fleet_ctx.pacer else {},
            "memory": self.trimmer.status(),
        }

    def _frames_taken(self) -> int:
        """Frames both sockets took in, good or bad (the trimmer watches it for bursts)."""
        c, a = self.channel, self.admission
        workers = (c.batches + sum(c.rejected.values())) if c is not None else 0
        return workers + a.admitted + sum(a.dropped.values()) + sum(self.rejected_frames.values())
