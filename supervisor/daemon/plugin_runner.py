"""Runs one plugin inside the supervisor's loop, and keeps it from hurting the loop.

- `run()` raising is caught, logged, shown as `failed` with the error in
  `status`, and the plugin is started again after a backoff (1 s doubling
  to 60 s; reset after it has run a minute). It never reaches the supervisor.
- Fleet events reach `on_event` through a bounded buffer read by the plugin's
  own task; each call is cut off after HOOK_TIMEOUT_S. A plugin that falls
  behind loses events, counted, instead of growing a queue.
- Worker messages reach `on_message` synchronously (the hot path); an
  exception there is counted and logged (rate-limited), never raised.
"""

from __future__ import annotations

import math
import time
from typing import Any

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from supervisor.plugins.base import Host, Plugin, WorkerRef

log = structlog.get_logger("supervisor.plugins")

HOOK_TIMEOUT_S = 1.0
EVENT_BUFFER = 1024
_BACKOFF_S = (1.0, 60.0)  # first, most
_HEALTHY_AFTER_S = 60.0


class PluginRunner:
    def __init__(self, plugin: Plugin, host: Host) -> None:
        self.plugin = plugin
        self.host = host
        self.state = "starting"
        self.error = ""
        self.restarts = 0
        self.events_dropped = 0
        self.hook_timeouts = 0
        self.hook_errors = 0
        self._send: MemoryObjectSendStream[tuple[str, dict[str, Any]]]
        self._receive: MemoryObjectReceiveStream[tuple[str, dict[str, Any]]]
        self._send, self._receive = anyio.create_memory_object_stream(EVENT_BUFFER)

    @property
    def name(self) -> str:
        return self.plugin.name

    async def run(self) -> None:
        """Run the plugin until it returns; restart it with backoff whenever it raises."""
        failures = 0
        while True:
            started = time.monotonic()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._deliver_events)
                    self.state, self.error = "running", ""
                    await self.plugin.run(self.host)
                    tg.cancel_scope.cancel()
                self.state = "stopped"
                return
            except Exception as group:  # the plugin boundary: nothing gets past it
                e = _root(group)
                failures = 0 if time.monotonic() - started > _HEALTHY_AFTER_S else failures + 1
                delay = min(_BACKOFF_S[1], _BACKOFF_S[0] * 2 ** max(0, failures - 1))
                self.state, self.error = "failed", f"{type(e).__name__}: {e}"
                self.restarts += 1
                log.error("plugin_crashed", plugin=self.name, exc_info=e)
                self.host.emit(
                    "plugin_failed", "error", plugin=self.name, error=self.error, retry_in_s=delay
                )
                await anyio.sleep(delay)

    def wants(self, event: str) -> bool:
        subscribed = self.plugin.subscribe
        return "*" in subscribed or event in subscribed

    def deliver(self, event: str, fields: dict[str, Any]) -> None:
        """Hand an event over without waiting; a full buffer drops it (counted)."""
        try:
            self._send.send_nowait((event, fields))
        except anyio.WouldBlock:
            self.events_dropped += 1

    async def _deliver_events(self) -> None:
        async for event, fields in self._receive:
            with anyio.move_on_after(HOOK_TIMEOUT_S) as scope:
                await self.plugin.on_event(event, fields)
            if scope.cancelled_caught:
                self.hook_timeouts += 1
                log.warning(
                    "plugin_hook_cut_off", plugin=self.name, hook="on_event", fleet_event=event
                )

    def on_message(self, worker: WorkerRef, message: list[Any]) -> None:
        try:
            self.plugin.on_message(worker, message)
        except Exception:
            self.hook_errors += 1
            if math.log2(self.hook_errors).is_integer():  # 1, 2, 4, ...: never a log flood
                log.exception("plugin_hook_failed", plugin=self.name, hook="on_message")

    def status(self) -> dict[str, Any]:
        base = {
            "state": self.state,
            "error": self.error,
            "restarts": self.restarts,
            "events_dropped": self.events_dropped,
            "hook_timeouts": self.hook_timeouts,
            "hook_errors": self.hook_errors,
        }
        try:
            extra = self.plugin.status()
        except Exception as e:
            return base | {"status_error": f"{type(e).__name__}: {e}"}
        if extra.get("degraded") and self.state == "running":
            base["state"] = "degraded"
        return base | extra


def _root(e: BaseException) -> BaseException:
    """The plugin's own exception, out of the task group's wrapping."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e
