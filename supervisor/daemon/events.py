"""Fleet events: each goes to the log and to the events socket.

An event is a stable snake_case name (`worker_spawned`, `bot_scaled`, ...)
with fixed keys. On the socket it is two frames, the name (subscribers
filter on it) and a msgpack map with "event", "ts" (unix seconds) and the
keys; `supervisor events` prints them as they come.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
import structlog

from supervisor.wire.transport import EventPublisher

log = structlog.get_logger("supervisor")


class Events:
    def __init__(self) -> None:
        self._publisher: EventPublisher | None = None
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.published = 0

    def bind(self, publisher: EventPublisher | None) -> None:
        self._publisher = publisher

    def listen(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """Also hand each event to listener(event, fields); it must not block."""
        self._listeners.append(listener)

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        getattr(log, level)(event, **fields)
        for listener in self._listeners:
            listener(event, fields)
        if self._publisher is not None:
            payload = msgpack.packb({"event": event, "ts": time.time(), **fields})
            self._publisher.publish(event.encode(), payload)
            self.published += 1
