"""What `supervisor status --json` shows (and the monitor serves as /api/status).

Rendering only: it reads bots, slots and autoscalers and builds the documented shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.daemon.autoscaler import Autoscaler
    from supervisor.daemon.channel import WorkerLink
    from supervisor.daemon.fleet import Bot
    from supervisor.daemon.slots import Slot


def full_status(
    header: dict[str, Any],
    bots: list[Bot],
    autoscalers: Mapping[str, Autoscaler],
    plugins: dict[str, Any],
    now: float,
) -> dict[str, Any]:
    """The whole reply: the supervisor's header, each bot (with its scaling), each plugin."""
    return {
        "supervisor": header,
        "bots": {b.name: _bot_with_scale(b, autoscalers.get(b.name), now) for b in bots},
        "plugins": plugins,
    }


def _bot_with_scale(bot: Bot, autoscaler: Autoscaler | None, now: float) -> dict[str, Any]:
    status = bot_status(bot, now)
    if autoscaler is not None:
        status["scale"] = autoscaler.status(now)
    if bot.job is not None:
        status["job"] = bot.job.status(bot.outcome())
    return status


def bot_status(bot: Bot, now: float) -> dict[str, Any]:
    """One bot as `status --json` shows it (the shape is documented in the README)."""
    slots = sorted(bot.slots.values(), key=lambda s: s.index)
    return {
        "state": bot.state().value,
        "desired": bot.desired,
        "running": bot.running,
        "ready": bot.ready,
        "starting": bot.starting,
        "mode": bot.mode,
        "restarts": bot.restarts,
        "uptime_s": round(now - bot.started_at, 3) if bot.started_at else 0.0,
        "failure": bot.failure,
        "depends_on": list(bot.spec.depends_on),
        "waiting_for": [*bot.waiting_for, *bot.needs_down],
        "waiting_reason": bot.waiting_reason or None,
        "kind": bot.spec.kind.value,
        "workers": [_worker_status(bot, s, now) for s in slots],
        **({"resources": r} if (r := bot.cgroups.status()) is not None else {}),
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
        "sdk_connected": _sdk_connected(bot, link),
        "uptime_s": round(child.uptime_s(now), 3) if child else 0.0,
        "restarts": slot.restarts,
        "unresponsive": slot.unresponsive,
        "failure": slot.failure or None,
        "cpu_percent": round(cpu, 1),
        "rss_bytes": rss,
        "heartbeat_age_s": round(now - beat, 3) if beat is not None else None,
        "messages": link.messages if link else 0,
        "dropped": link.dropped if link else 0,
        "metrics": link.metrics() if link else {},
        "probes": bot.probes.status(slot) if child else {},
        **({"cgroup": u} if (u := bot.cgroups.worker_usage(slot.index)) is not None else {}),
    }


def _sdk_connected(bot: Bot, link: WorkerLink | None) -> bool | None:
    """True once a frame of the worker's SDK arrived; False while one is awaited in vain
    (readiness by the SDK, none yet: see the worker's stderr); None if none is expected."""
    if link is None:
        return None
    if link.messages:
        return True
    return False if bot.expects_sdk(link) else None
