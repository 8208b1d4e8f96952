"""The control commands: check the arguments, act on the fleet, return a result.

Arguments come off the wire and are untrusted; every refusal is a
`CommandError` with a stable code (`unknown_bot`, `bad_count`, ...) and a
message meant for the operator.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from supervisor import __version__
from supervisor.errors import CommandError
from supervisor.fleet import Bot
from supervisor.slots import Slot

if TYPE_CHECKING:
    from supervisor.supervisor import Supervisor

log = structlog.get_logger("supervisor.commands")

MAX_WORKERS = 10_000  # per bot; a typo such as 20000 instead of 200 is refused


class Commands:
    def __init__(self, sup: Supervisor) -> None:
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
        return full_status(self._sup, name, time.monotonic())

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
        await self._sup.save_state()  # the reply waits for the disk
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
            "warning": _outside_range(bot),
        }

    async def start(self, args: dict[str, Any]) -> Any:
        bot, worker = self._bot(args), self._worker(args)
        await bot.start(worker)
        self._sup.events.emit("bot_started", bot=bot.name, worker=worker)
        return {"bot": bot.name, "state": bot.state().value}

    async def stop(self, args: dict[str, Any]) -> Any:
        bot, worker = self._bot(args), self._worker(args)
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


# ---------------------------------------------------------------- status


def full_status(sup: Supervisor, bot_name: str | None, now: float) -> dict[str, Any]:
    """What `status --json` prints (and the monitor serves as /api/status)."""
    bots = [sup.bots[bot_name]] if bot_name is not None else list(sup.bots.values())
    return {
        "supervisor": sup.status_header(),
        "bots": {b.name: _bot_with_scale(sup, b, now) for b in bots},
        "plugins": {r.name: r.status() for r in sup.plugin_host.runners},
    }


def _bot_with_scale(sup: Supervisor, bot: Bot, now: float) -> dict[str, Any]:
    status = bot_status(bot, now)
    autoscaler = sup.autoscalers.get(bot.name)
    if autoscaler is not None:
        status["scale"] = autoscaler.status(now)
    return status


def bot_status(bot: Bot, now: float) -> dict[str, Any]:
    """One bot as `status --json` shows it (the shape is documented in the README)."""
    slots = sorted(bot.slots.values(), key=lambda s: s.index)
    return {
        "state": bot.state().value,
        "desired": bot.desired,
        "running": bot.running,
        "ready": bot.ready,
        "mode": bot.mode,
        "restarts": bot.restarts,
        "uptime_s": round(now - bot.started_at, 3) if bot.started_at else 0.0,
        "failure": bot.failure,
        "depends_on": list(bot.spec.depends_on),
        "waiting_for": list(bot.waiting_for),
        "workers": [_worker_status(bot, s, now) for s in slots],
    }


def _worker_status(bot: Bot, slot: Slot, now: float) -> dict[str, Any]:
    child = slot.child if slot.alive else None
    link = slot.link if child else None
    cpu, rss = child.sample() if child else (0.0, 0)
    beat = link.last_heartbeat if link else None
    return {
        "slot": slot.index,
        "pid": child.pid if child else None,
        "state": bot.worker_state(slot, now).value,
        "ready": slot.ready,
        "sdk": bool(link and link.said_hello),
        "uptime_s": round(child.uptime_s(now), 3) if child else 0.0,
        "restarts": slot.restarts,
        "unresponsive": slot.unresponsive,
        "cpu_percent": round(cpu, 1),
        "rss_bytes": rss,
        "heartbeat_age_s": round(now - beat, 3) if beat is not None else None,
        "messages": link.messages if link else 0,
        "dropped": link.dropped if link else 0,
        "metrics": link.metrics() if link else {},
    }
