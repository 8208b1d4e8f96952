"""The plugin interface, and what a plugin may ask of the supervisor (the host).

    class Hello(Plugin):
        name = "hello"
        subscribe = frozenset({"worker_exited"})

        @classmethod
        def configure(cls, table: Table) -> HelloConfig:      # [plugins.hello]
            config = HelloConfig(greeting=table.take("greeting", string, "hi"))
            table.finish()                                     # unknown keys are errors
            return config

        async def run(self, host: Host) -> None:               # a task in the loop
            while True:
                await anyio.sleep(60)
                host.emit("hello_said", greeting=self.config.greeting)

        async def on_event(self, event: str, fields: dict[str, Any]) -> None:
            ...                                                # cut off if it takes too long

A plugin that raises is logged, shown as failed in `status` and started
again with backoff; it never takes the supervisor down. Hooks run in the
plugin's own task with a time limit; what arrives while a plugin is behind is
dropped and counted, never queued without bound. A plugin never touches
processes or sockets itself: it asks the host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import anyio

from supervisor.config.fields import Table


@dataclass(frozen=True, slots=True)
class WorkerRef:
    """A live worker, as plugins see it (a snapshot)."""

    bot: str
    slot: int
    pid: int
    ready: bool
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric a plugin publishes (the monitor serves them on /metrics)."""

    name: str
    kind: str  # "gauge" or "counter"
    help: str
    samples: tuple[tuple[Mapping[str, str], float], ...]  # (labels, value)


class Host(Protocol):
    """What the supervisor offers its plugins."""

    def status(self) -> dict[str, Any]:
        """The fleet, as `supervisor status --json` shows it."""

    def workers(self) -> list[WorkerRef]:
        """The live workers."""

    def send(self, bot: str, slot: int | None, kind: str, values: Mapping[str, Any] | None) -> int:
        """Send "config" (with values), "warm" (values {"keys": [...]}), "drain" or "stop" to
        one worker of a bot (or all, with slot None); returns to how many it went."""

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        """A fleet event: the log, the events socket and other plugins see it."""

    async def restart_worker(self, bot: str, slot: int, reason: str) -> None:
        """Stop one worker and start a new one in its slot."""

    def plugin_metrics(self) -> list[Metric]:
        """Every running plugin's metrics."""

    async def command(self, cmd: str, args: Mapping[str, Any]) -> Any:
        """Run a control command (`scale`, `restart`, ...) as the CLI would; raises
        CommandError when it is refused. The caller checks its own users' roles first."""


class Plugin:
    """Base class of plugins; see the module docstring."""

    name: ClassVar[str] = ""
    subscribe: ClassVar[frozenset[str]] = frozenset()  # fleet events for on_event; "*": all
    # Worker message kinds (32-63) this plugin reads, with a check that raises ProtocolError.
    message_kinds: ClassVar[Mapping[int, Callable[[list[Any]], None]]] = {}
    # `[supervisor]` keys (such as "environment") its table takes when it does not set them.
    inherits: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def configure(cls, table: Table) -> Any:
        """Read `[plugins.NAME]` into a typed config; call table.finish() at the end."""
        table.finish()
        return None

    @classmethod
    def worker_env(cls, config: Any) -> Mapping[str, str]:
        """Variables every worker gets (e.g. where a plugin's service is)."""
        return {}

    @classmethod
    def describe(cls, settings: Any) -> list[str]:
        """Lines for `supervisor check`: the effective settings."""
        return []

    async def run(self, host: Host) -> None:
        """The plugin's own task. Returning ends the plugin (it is not restarted)."""
        await anyio.sleep_forever()

    async def on_event(self, event: str, fields: dict[str, Any]) -> None:
        """A fleet event this plugin subscribed to."""

    def on_message(self, worker: WorkerRef, message: list[Any]) -> None:
        """A worker message of one of `message_kinds` (the hot path: be quick)."""

    def status(self) -> dict[str, Any]:
        """Extra keys for this plugin's section of `status`; "degraded": True shows the
        plugin as degraded (running, but something it needs is missing)."""
        return {}

    def metrics(self) -> list[Metric]:
        """Metrics for /metrics."""
        return []

    @property
    def sample_interval_s(self) -> float | None:
        """How often this plugin samples workers' memory, if it does (see `rss_mb`). The
        supervisor's memory guard (`max_memory_mb`) then reads those samples instead of /proc."""
        return None

    def rss_mb(self, pid: int) -> float | None:
        """A worker's newest RSS sample in MiB, or None when this plugin has none."""
        return None
