"""What the cache and pool clients see of the worker: the settings and a narrow link.

The worker (`worker.py`) satisfies these protocols; the clients (`cache.py`, `dbpool.py`,
`dbpool_sync.py`) type against them, so they never import the worker and the worker imports
them only when a bot first uses them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Settings:
    """What the supervisor put in our environment."""

    address: str
    token: bytes
    bot: str
    slot: int
    supervisor_pid: int
    heartbeat_s: float
    stop_signal: int

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings | None:
        """None when not started by a supervisor (the SDK then does nothing)."""
        env = dict(os.environ) if env is None else env
        try:
            return cls(
                address=env["SUPERVISOR_WORKERS"],
                token=bytes.fromhex(env["SUPERVISOR_TOKEN"]),
                bot=env["SUPERVISOR_BOT"],
                slot=int(env["SUPERVISOR_WORKER"]),
                supervisor_pid=int(env["SUPERVISOR_PID"]),
                heartbeat_s=float(env.get("SUPERVISOR_HEARTBEAT_S", "2.5")),
                stop_signal=int(env.get("SUPERVISOR_STOP_SIGNAL", signal.SIGTERM)),
            )
        except (KeyError, ValueError):
            return None


class Link(Protocol):
    """What the cache uses: add to the next batch, sum reports per batch, send what waits."""

    def report(self, message: list[Any]) -> None: ...

    def flush(self) -> bool: ...

    def collected(self) -> None: ...

    def add_collector(self, collect: Callable[[], list[list[Any]]]) -> None: ...


class PoolLink(Link, Protocol):
    """What the async pool client uses besides: our settings and the plugin channel."""

    @property
    def settings(self) -> Settings: ...

    def send_plugin_message(self, message: list[Any]) -> None: ...


class SyncPoolLink(PoolLink, Protocol):
    """What the sync pool client uses besides: beat, and wait for the supervisor's commands."""

    def beat(self) -> None: ...

    def wait_commands(self, timeout_s: float) -> None: ...
