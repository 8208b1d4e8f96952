"""The control commands: check the arguments, act on the fleet, return a result.

Arguments come off the wire and are untrusted; every refusal is a
`CommandError` with a stable code (`unknown_bot`, `bad_count`, ...) and a
message meant for the operator.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from supervisor import __version__
from supervisor.daemon import status_fit
from supervisor.daemon.events import Events
from supervisor.daemon.fleet import Bot
from supervisor.daemon.stops import Stops
from supervisor.errors import CommandError
from supervisor.wire import protocol

if TYPE_CHECKING:
    import anyio


class Owner(Protocol):
    """What the commands use of the supervisor (`owner.Supervisor` is one)."""

    bots: dict[str, Bot]
    pins: dict[str, int]
    stops: Stops
    events: Events
    shutdown_requested: anyio.Event
    fleet_down: anyio.Event

    def status(self, bot_name: str | None, now: float) -> dict[str, Any]: ...

    def status_header(self) -> dict[str, Any]: ...

    async def save_state(self) -> str: ...

    async def reload(self) -> dict[str, Any]: ...


log = structlog.get_logger("supervisor.commands")

MAX_WORKERS = 10_000  # per bot; a typo such as 20000 instead of 200 is refused


def _encode_result(result: Any) -> bytes:
    return protocol.encode_reply(protocol.Reply(0, True, result))


class Commands:
    def __init__(self, sup: Owner) -> None:
        self._sup = sup
        self._table: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "ping": self.ping,
            "status": self.status,
            "scale": self.scale,
            "start": self.start,
            "stop": self.stop,
            "restart": self.restart,
            "shutdown": self.shutdown,
            "reload": self.reload,
        }

    async def dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
        handler = self._table.get(cmd)
        if handler is None:
            raise CommandError("unknown_command", f"unknown command {cmd!r}")
        if self._sup.shutdown_requested.is_set() and cmd not in ("ping", "status", "shutdown"):
            raise CommandError("shutting_down", "the supervisor is shutting down")
        return await handler(args)

    async def ping(self, args: dict[str, Any]) -> Any:
        return {"pid": self._sup.status_header()["pid"], "version": __version__}

    async def status(self, args: dict[str, Any]) -> Any:
        name = args.get("bot")
        if name is not None:
            self._bot(args)  # a clear error for an unknown bot
        return status_fit.fit(self._sup.status(name, time.monotonic()), _encode_result)

    async def scale(self, args: dict[str, Any]) -> Any:
        bot = self._bot(args)
        count = args.get("count")
        previous, previous_mode = bot.desired, bot.mode
        if count == "auto":
            bot.pin = None
            self._sup.pins.pop(bot.name, None)
        elif isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_WORKERS:
            bot.pin = count
            self._sup.pins[bot.name] = count
        else:
            raise CommandError(
                "bad_count",
                f"the count must be a whole number from 0 to {MAX_WORKERS}, or auto; got {count!r}",
            )
        unsaved = await self._sup.save_state()  # the reply waits for the disk
        self._sup.events.emit(
            "bot_scaled", bot=bot.name, desired=bot.desired, previous=previous, mode=bot.mode
        )
        bot.poke()
        return {
            "bot": bot.name,
            "desired": bot.desired,
            "previous": previous,
            "mode": bot.mode,
            "previous_mode": previous_mode,
            "warning": _outside_range(bot)
            or (unsaved and f"not saved to disk yet ({unsaved}); kept, and saved once it can be"),
        }

    async def start(self, args: dict[str, Any]) -> Any:
        bot, worker = self._bot(args), self._worker(args)
        self._sup.stops.started(bot.name, worker)
        await self._sup.save_state()
        await bot.start(worker)
        self._sup.events.emit("bot_started", bot=bot.name, worker=worker)
        return {"bot": bot.name, "state": bot.state().value}

    async def stop(self, args: dict[str, Any]) -> Any:
        bot, worker = self._bot(args), self._worker(args)
        self._sup.stops.stopped(bot.name, worker)
        await self._sup.save_state()  # a stop is kept across a restart, like a pin
        await bot.stop(worker)
        self._sup.events.emit("bot_stopped", bot=bot.name, worker=worker)
        return {"bot": bot.name, "state": bot.state().value}

    async def restart(self, args: dict[str, Any]) -> Any:
        bot, worker = self._bot(args), self._worker(args)
        if args.get("rolling"):
            if worker is not None:
                raise CommandError("bad_request", "--rolling restarts every worker; no --worker")
            if not await bot.roll():
                raise CommandError(
                    "roll_stopped",
                    f"{bot.name}: a new worker did not become ready; the rolling restart "
                    "stopped there (the other workers keep running)",
                )
        else:
            self._sup.stops.started(bot.name, worker)
            await self._sup.save_state()
            await bot.restart(worker)
        self._sup.events.emit("bot_restarted", bot=bot.name, worker=worker)
        return {"bot": bot.name, "state": bot.state().value}

    async def reload(self, args: dict[str, Any]) -> Any:
        return await self._sup.reload()

    async def shutdown(self, args: dict[str, Any]) -> Any:
        self._sup.shutdown_requested.set()
        await self._sup.fleet_down.wait()
        return {"stopped": sorted(self._sup.bots)}

    # ------------------------------------------------------------ arguments

    def _bot(self, args: dict[str, Any]) -> Bot:
        name = args.get("bot")
        bot = self._sup.bots.get(name) if isinstance(name, str) else None
        if bot is None:
            known = ", ".join(self._sup.bots) or "none"
            raise CommandError("unknown_bot", f"no bot named {name!r} (bots: {known})")
        return bot

    def _worker(self, args: dict[str, Any]) -> int | None:
        worker = args.get("worker")
        if worker is None:
            return None
        bot = self._bot(args)
        if isinstance(worker, bool) or not isinstance(worker, int) or worker not in bot.slots:
            slots = ", ".join(str(i) for i in sorted(bot.slots)) or "none"
            raise CommandError(
                "unknown_worker", f"bot {bot.name} has no worker {worker!r} (workers: {slots})"
            )
        return worker


def _outside_range(bot: Bot) -> str:
    """A pin outside the autoscaling range is allowed, and said."""
    policy, pin = bot.spec.scale, bot.pin
    if policy is None or pin is None or policy.min <= pin <= policy.max:
        return ""
    return f"{pin} is outside the autoscaling range [{policy.min}, {policy.max}]"
