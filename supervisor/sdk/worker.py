"""The SDK that bots import: report to the supervisor in batches, hear its commands.

    from supervisor.sdk.worker import Worker

    async def main() -> None:                  # an asyncio bot
        async with Worker.connect() as w:
            w.ready()
            while not w.draining:
                await do_one_job()
                w.count("jobs_done")           # non-blocking, batched
                w.gauge("queue_depth", depth)

    def main() -> None:                        # a sync bot
        with Worker.connect_sync() as w:
            w.ready()
            while not w.draining:
                do_one_job()
                w.beat()                       # heartbeat from the bot's own loop

Sending is an append to a bounded buffer; a batch goes out when 256
messages or 256 KiB are waiting, 50 ms after the first, on `flush()` and on
exit. If the supervisor falls behind, the oldest metrics are dropped and
their count travels in the next batch: the bot never blocks on the
supervisor. Heartbeats come from the bot's own loop (a task in its event
loop, or `beat()`), so a blocked loop stops them and the supervisor's
watchdog notices. On exit the SDK sends a last batch and waits, bounded,
for the supervisor to acknowledge it: libzmq can drop the last messages of
a socket closed right after sending (zeromq/libzmq#4660).

If the supervisor goes away (our parent changed, or it stopped answering
heartbeats), the SDK sends this worker its stop signal, so the bot ends
through its usual stop path. Outside a supervisor (no SUPERVISOR_*
variables) every call is a cheap no-op, so a bot also runs standalone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from supervisor import __version__
from supervisor.errors import ProtocolError
from supervisor.sdk.link import Settings
from supervisor.sdk.reach import warn_unreachable
from supervisor.wire import protocol
from supervisor.wire.transport import AsyncDealer, SyncDealer

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

    from supervisor.sdk.cache import AsyncCache, SyncCache
    from supervisor.sdk.dbpool import PoolClient
    from supervisor.sdk.dbpool_sync import SyncBudgetPool, SyncPoolClient

BATCH_MESSAGES = 256
BATCH_BYTES = 256 << 10
FLUSH_AFTER_S = 0.05
MAX_BUFFERED_METRICS = 10_000
_BYE_WAIT_S = 2.0
_RETRY_S = 0.005  # after libzmq refused a batch
_GONE_AFTER_S = 30.0  # no answer to heartbeats for this long (at least): the supervisor is gone
_CONTROL_QUEUE = 256


class Control(NamedTuple):
    """What the supervisor asks: "config" (with values), "drain" or "stop"."""

    kind: str
    values: dict[str, Any]


@dataclass
class _Outbox:
    """Messages waiting for a batch, in the order they were made.

    Metrics may be shed (the oldest first) when the supervisor falls behind;
    other messages never are. Batches keep the order across both kinds, so
    READY never overtakes the gauges sent before it and BYE is always last.
    """

    max_metrics: int = MAX_BUFFERED_METRICS
    metrics: deque[tuple[int, list[Any], int]] = field(default_factory=deque)  # (seq, msg, bytes)
    other: deque[tuple[int, list[Any], int]] = field(default_factory=deque)
    dropped: int = 0
    size: int = 0  # bytes, roughly
    first_at: float = 0.0
    _seq: Iterator[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self.metrics) + len(self.other)

    def add_metric(self, message: list[Any], size: int) -> None:
        if not self:
            self.first_at = time.monotonic()
        if len(self.metrics) >= self.max_metrics:
            self.size -= self.metrics.popleft()[2]
            self.dropped += 1
        self.metrics.append((next(self._seq), message, size))
        self.size += size

    def add(self, message: list[Any], size: int = 16) -> None:
        if not self:
            self.first_at = time.monotonic()
        self.other.append((next(self._seq), message, size))
        self.size += size

    def take(self) -> list[list[Any]]:
        """One batch's worth (by count and bytes), oldest first; the drop count rides along."""
        batch: list[list[Any]] = []
        if self.dropped:
            batch.append([protocol.DROPPED, self.dropped])
            self.dropped = 0
        taken = 0
        metrics, other = self.metrics, self.other
        while (metrics or other) and len(batch) < BATCH_MESSAGES:
            queue = other if other and (not metrics or other[0][0] < metrics[0][0]) else metrics
            _, message, size = queue[0]
            if taken + size > BATCH_BYTES and batch:
                break
            queue.popleft()
            batch.append(message)
            taken += size
        self.size = max(0, self.size - taken) if self else 0
        self.first_at = time.monotonic()
        return batch


class _Link:
    """What the async and sync workers share: the buffer, batching and commands."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config: dict[str, Any] = {}
        self.draining = False
        self.sent_batches = 0
        self._outbox = _Outbox()
        self._pending: bytes | None = None  # a batch libzmq would not take yet
        self._retry_at = 0.0
        self._appends = 0
        self._callbacks: list[Callable[[Control], None]] = []
        self._seq = 0
        self._last_ack = time.monotonic()
        self._bye_seq = -1
        self._bye_acked = False
        self._db_config: Callable[[dict[str, Any]], None] | None = None  # db_pool(): dbpool*.py
        self._collectors: list[Callable[[], list[list[Any]]]] = []
        self._cache: Any = None
        self._outbox.add([protocol.HELLO, settings.bot, settings.slot, os.getpid(), __version__])

    # ------------------------------------------------------------ what bots call

    def ready(self) -> None:
        """This worker can take work now."""
        self._outbox.add([protocol.READY])
        self.flush()

    def gauge(self, name: str, value: float) -> None:
        """The current value of something (queue depth, in-flight jobs, ...)."""
        self._outbox.add_metric([protocol.METRIC, name, value, False], 24 + len(name))
        self._maybe_flush()

    def count(self, name: str, n: float = 1) -> None:
        """Add n to a counter (jobs done, errors, ...)."""
        self._outbox.add_metric([protocol.METRIC, name, n, True], 24 + len(name))
        self._maybe_flush()

    def busy(self, n: float) -> None:
        """How much work this worker holds now (jobs in flight, open sessions). On a
        scale-down the supervisor stops the workers holding the least first; a `busy`
        gauge, so it also shows in status and can be scaled on."""
        self.gauge("busy", n)

    def log(self, level: str, message: str) -> None:
        """A line for the supervisor's log ("debug", "info", "warning" or "error")."""
        text = message[: protocol.MAX_TEXT]
        self._outbox.add([protocol.LOG, level, text], 16 + len(text))
        self._maybe_flush()

    def on_control(self, callback: Callable[[Control], None]) -> None:
        """Call callback(Control) for each command from the supervisor.

        Once a callback (or a `control()` reader) is there, "stop" is the bot's to
        handle; without one, the SDK sends its own worker the stop signal.
        """
        self._callbacks.append(callback)

    def flush(self) -> bool:
        """Send everything buffered now; False if the supervisor is behind (kept for later)."""
        for collect in self._collectors:
            for message in collect():
                self._outbox.add_metric(message, 64 + len(message[1]))
        while True:
            if self._pending is None:
                if not self._outbox:
                    return True
                self._pending = protocol.encode_batch(self.settings.token, self._outbox.take())
            if not self._dealer_send(self._pending):
                # The supervisor is behind: do not retry on every metric (that would take
                # the CPU it needs to catch up); try again a little later.
                self._retry_at = time.monotonic() + _RETRY_S
                return False
            self._pending = None
            self.sent_batches += 1

    # ------------------------------------------------------------ for SDK helpers

    def add_collector(self, collect: Callable[[], list[list[Any]]]) -> None:
        """collect() gives messages summed up since the last batch; called on every flush."""
        self._collectors.append(collect)

    def collected(self) -> None:
        """A collector holds something: make sure a flush comes."""
        self._schedule_flush()

    def report(self, message: list[Any]) -> None:
        """A plugin message (kinds 32-63), shed like a metric if the supervisor is behind."""
        self._outbox.add_metric(message, 64)
        self._maybe_flush()

    def send_plugin_message(self, message: list[Any]) -> None:
        """A plugin message (kinds 32-63) that must arrive, sent now, in a batch of its own.

        Alone, because a supervisor without that plugin drops the whole batch that
        carries it (an unknown kind), and it must not take other messages with it.
        """
        if self.flush() and self._dealer_send(
            protocol.encode_batch(self.settings.token, [message])
        ):
            self.sent_batches += 1
            return
        self._outbox.add(message, 64)  # the supervisor is behind: in order, with the rest
        self.flush()

    # ------------------------------------------------------------ shared machinery

    def _dealer_send(self, frame: bytes) -> bool:
        raise NotImplementedError

    def _maybe_flush(self) -> None:
        """After each append (the hot path: kept to a few comparisons)."""
        outbox = self._outbox
        if len(outbox.metrics) + len(outbox.other) >= BATCH_MESSAGES or outbox.size >= BATCH_BYTES:
            if self._pending is None or time.monotonic() >= self._retry_at:
                self.flush()
        else:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Async bots flush on a timer; sync ones look at the clock every 16th call."""
        self._appends += 1
        if self._appends & 15 == 0 and time.monotonic() - self._outbox.first_at >= FLUSH_AFTER_S:
            self.flush()

    def _heartbeat(self) -> None:
        self._seq += 1
        self._outbox.add([protocol.HEARTBEAT, self._seq])
        self.flush()

    def _bye(self) -> int:
        self._seq += 1
        self._bye_seq = self._seq
        self._outbox.add([protocol.BYE, self._seq])
        self.flush()
        return self._seq

    def _gone_reason(self) -> str | None:
        if os.getppid() != self.settings.supervisor_pid:
            return f"the supervisor (pid {self.settings.supervisor_pid}) is gone"
        silent_s = time.monotonic() - self._last_ack
        if silent_s > max(_GONE_AFTER_S, 4 * self.settings.heartbeat_s):
            return f"the supervisor has not answered for {silent_s:.0f}s"
        return None

    def _supervisor_gone(self, reason: str) -> None:
        # Our stderr was a pipe to the supervisor: writing to it may fail now.
        with contextlib.suppress(OSError, ValueError):
            print(f"supervisor.worker: {reason}; stopping this worker", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            os.killpg(0, self.settings.stop_signal)

    def _receive(self, frame: bytes) -> None:
        try:
            messages = protocol.decode_commands(frame)
        except ProtocolError as e:
            print(f"supervisor.worker: bad frame from the supervisor: {e}", file=sys.stderr)
            return
        for m in messages:
            self._handle(m)

    def _handle(self, message: list[Any]) -> None:
        kind = message[0]
        self._last_ack = time.monotonic()  # anything from it shows it is there
        if kind == protocol.ACK:
            if message[1] == self._bye_seq:
                self._bye_acked = True
            return
        if kind == protocol.WARM:
            if self._cache is not None:
                self._cache.request_warm(message[1])
            return
        if kind == protocol.CONFIG:
            self.config.update(message[1])
            if self._db_config is not None:
                self._db_config(message[1])
            control = Control("config", dict(message[1]))
        elif kind == protocol.DRAIN:
            self.draining = True
            control = Control("drain", {})
        else:
            control = Control("stop", {})
        heard = self._deliver(control)
        if control.kind == "stop" and not heard:
            os.kill(os.getpid(), self.settings.stop_signal)

    def _deliver(self, control: Control) -> bool:
        for callback in self._callbacks:
            callback(control)
        return bool(self._callbacks)


# ---------------------------------------------------------------- asyncio bots


class AsyncWorker(_Link):
    """A worker in an asyncio bot; use `async with Worker.connect() as w`."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        warn_unreachable(settings.address)
        self._dealer = AsyncDealer(settings.address)
        self._queue: asyncio.Queue[Control] = asyncio.Queue(_CONTROL_QUEUE)
        self._iterating = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._bye_done = asyncio.Event()
        self._db: PoolClient | None = None

    @property
    def cache(self) -> AsyncCache:
        """The read-through cache on Redis (see supervisor.cache); `open_cache` to configure."""
        cache: AsyncCache | None = self._cache
        return cache if cache is not None else self.open_cache()

    def open_cache(self, url: str | None = None, **options: Any) -> AsyncCache:
        """Set up `cache`: url (else $SUPERVISOR_CACHE_URL, else local Redis), default_ttl_s,
        default_loader(key), xfetch_beta, encode/decode."""
        from supervisor.sdk.cache import AsyncCache  # noqa: PLC0415  (bots that cache pay for it)

        cache = self._cache = AsyncCache(self, url, **options)
        return cache

    async def __aenter__(self) -> AsyncWorker:
        self._tasks = [
            asyncio.create_task(self._read(), name="supervisor-sdk-reader"),
            asyncio.create_task(self._beat(), name="supervisor-sdk-heartbeat"),
        ]
        self.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def control(self) -> AsyncIterator[Control]:
        """The supervisor's commands, as they come."""
        self._iterating += 1
        try:
            while True:
                yield await self._queue.get()
        finally:
            self._iterating -= 1

    async def db_pool(
        self, conninfo: str | None = None, wait_s: float | None = None, **kwargs: Any
    ) -> AsyncConnectionPool[Any]:
        """A psycopg_pool pool held to this worker's share of the fleet's PostgreSQL budget.

        Waits until the db_tuning plugin grants connections (with wait_s, at most that
        long, then TimeoutError; call again to wait on); resized live after that.
        conninfo defaults to the plugin's dsn; kwargs go to the pool (e.g. timeout=5).
        """
        from supervisor.sdk import dbpool  # noqa: PLC0415  (bots without a database skip psycopg)

        if self._db is None:
            self._db = dbpool.PoolClient(self, conninfo, kwargs)
            self._db_config = self._db.on_config
        async with asyncio.timeout(wait_s):
            return await self._db.wait_granted()

    async def aclose(self) -> None:
        """Send the last batch, wait (bounded) for its acknowledgement, close."""
        if self._db is not None:
            await self._db.close()
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._bye()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_BYE_WAIT_S):
                # libzmq's queue was full: retry now and then (nothing signals room).
                while self._pending is not None and not self.flush():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                await self._bye_done.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._cache is not None:
            await self._cache.aclose()
        self._dealer.close(linger_s=0.0 if self._bye_acked else 1.0)

    def _dealer_send(self, frame: bytes) -> bool:
        return self._dealer.send(frame)

    def _schedule_flush(self) -> None:
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                FLUSH_AFTER_S, self._timed_flush
            )

    def _timed_flush(self) -> None:
        self._flush_timer = None
        if not self.flush() or self._outbox:
            self._schedule_flush()  # still more (or the supervisor is behind): try again

    async def _read(self) -> None:
        while True:
            self._receive(await self._dealer.recv())
            if self._bye_acked:
                self._bye_done.set()

    async def _beat(self) -> None:
        """Heartbeats from the bot's own loop: if the loop blocks, they stop."""
        while True:
            self._heartbeat()
            reason = self._gone_reason()
            if reason is not None:
                self._supervisor_gone(reason)
                return
            await asyncio.sleep(self.settings.heartbeat_s)

    def _deliver(self, control: Control) -> bool:
        heard = super()._deliver(control)
        if self._iterating:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(control)
            return True
        return heard


# ---------------------------------------------------------------- sync bots


class SyncWorker(_Link):
    """A worker in a sync bot; use `with Worker.connect_sync() as w` and call `beat()`."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        warn_unreachable(settings.address)
        self._dealer = SyncDealer(settings.address)
        self._next_beat = 0.0
        self._db: SyncPoolClient | None = None
        self.flush()

    @property
    def cache(self) -> SyncCache:
        """The read-through cache on Redis (see supervisor.cache); `open_cache` to configure."""
        cache: SyncCache | None = self._cache
        return cache if cache is not None else self.open_cache()

    def open_cache(self, url: str | None = None, **options: Any) -> SyncCache:
        """As AsyncWorker.open_cache; warms the supervisor asks for are served in `beat()`."""
        from supervisor.sdk.cache import SyncCache  # noqa: PLC0415

        cache = self._cache = SyncCache(self, url, **options)
        return cache

    def __enter__(self) -> SyncWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def beat(self) -> None:
        """Call in the bot's loop: heartbeats (at most one per interval), flushes, commands,
        and the cache warms the supervisor asked for (for a few ms at most)."""
        self.poll_control()
        if self._db is not None:
            self._db.tick()
        if self._cache is not None:
            self._cache.serve_warms()
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + self.settings.heartbeat_s
            self._heartbeat()
            reason = self._gone_reason()
            if reason is not None:
                self._supervisor_gone(reason)
        elif self._outbox and now - self._outbox.first_at >= FLUSH_AFTER_S:
            self.flush()

    def poll_control(self) -> None:
        """Handle whatever the supervisor has sent (callbacks run here)."""
        while (frame := self._dealer.recv_nowait()) is not None:
            self._receive(frame)

    def db_pool(
        self, conninfo: str | None = None, wait_s: float | None = None, **kwargs: Any
    ) -> SyncBudgetPool:
        """The sync db_pool(): blocks, beating, until the first grant (see dbpool_sync.py).

        With wait_s, raises TimeoutError after that long without one (call it again to
        wait on), so that a bot can look at its own stop flag meanwhile.
        """
        from supervisor.sdk.dbpool_sync import SyncPoolClient  # noqa: PLC0415

        if self._db is None:
            self._db = SyncPoolClient(self, conninfo, kwargs)
            self._db_config = self._db.on_config
        return self._db.wait_granted(wait_s)

    def wait_commands(self, timeout_s: float) -> None:
        """Wait up to timeout_s for the supervisor's commands, and handle them."""
        if self._dealer.poll(timeout_s):
            self.poll_control()

    def close(self) -> None:
        """Send the last batch, wait (bounded) for its acknowledgement, close."""
        if self._db is not None:
            self._db.close()
        self._bye()
        deadline = time.monotonic() + _BYE_WAIT_S
        while not self._bye_acked and (remaining := deadline - time.monotonic()) > 0:
            if self._pending is not None:
                self.flush()
            if self._dealer.poll(min(remaining, 0.05)):
                self.poll_control()
        self._dealer.close(linger_s=0.0 if self._bye_acked else 1.0)
        if self._cache is not None:
            self._cache.close()

    def _dealer_send(self, frame: bytes) -> bool:
        return self._dealer.send(frame)


# ---------------------------------------------------------------- standalone


class NullWorker:
    """The SDK outside a supervisor: everything is a no-op."""

    settings: Settings | None = None
    config: dict[str, Any] = {}  # noqa: RUF012  (never written)
    draining = False

    def __init__(self, sync: bool = False) -> None:
        self._sync = sync
        self._cache: Any = None

    @property
    def cache(self) -> Any:
        """A cache that works as under a supervisor, minus the reports and warms."""
        return self._cache if self._cache is not None else self.open_cache()

    def open_cache(self, url: str | None = None, **options: Any) -> Any:
        from supervisor.sdk.cache import AsyncCache, SyncCache  # noqa: PLC0415

        self._cache = (SyncCache if self._sync else AsyncCache)(None, url, **options)
        return self._cache

    def ready(self) -> None: ...
    def gauge(self, name: str, value: float) -> None: ...
    def count(self, name: str, n: float = 1) -> None: ...
    def busy(self, n: float) -> None: ...
    def log(self, level: str, message: str) -> None: ...
    def on_control(self, callback: Callable[[Control], None]) -> None: ...
    def beat(self) -> None: ...
    def poll_control(self) -> None: ...
    def close(self) -> None: ...
    async def aclose(self) -> None: ...

    def flush(self) -> bool:
        return True

    async def db_pool(
        self, conninfo: str | None = None, wait_s: float | None = None, **kwargs: Any
    ) -> AsyncConnectionPool[Any]:
        """Standalone: a plain, small pool (libpq's PG* variables apply), opened now."""
        from supervisor.sdk import dbpool  # noqa: PLC0415

        return await dbpool.standalone_pool(conninfo, kwargs)

    async def control(self) -> AsyncIterator[Control]:
        await asyncio.Event().wait()  # no supervisor, no commands
        yield Control("stop", {})  # pragma: no cover

    async def __aenter__(self) -> NullWorker:
        return self

    async def __aexit__(self, *exc: object) -> None: ...

    def __enter__(self) -> NullWorker:
        return self

    def __exit__(self, *exc: object) -> None: ...


class NullSyncWorker(NullWorker):
    """The sync SDK outside a supervisor."""

    def __init__(self) -> None:
        super().__init__(sync=True)

    def db_pool(  # type: ignore[override]  # the sync SDK's db_pool() is sync
        self, conninfo: str | None = None, wait_s: float | None = None, **kwargs: Any
    ) -> ConnectionPool[Any]:
        """Standalone: a plain, small pool (libpq's PG* variables apply), opened now."""
        from supervisor.sdk import dbpool_sync  # noqa: PLC0415

        return dbpool_sync.standalone_pool(conninfo, kwargs)


class Worker:
    """Entry points; see the module docstring."""

    @staticmethod
    def connect() -> AsyncWorker | NullWorker:
        """For asyncio bots: `async with Worker.connect() as w: ...`."""
        settings = Settings.from_env()
        return NullWorker() if settings is None else AsyncWorker(settings)

    @staticmethod
    def connect_sync() -> SyncWorker | NullSyncWorker:
        """For sync bots: `with Worker.connect_sync() as w: ... w.beat() ...`."""
        settings = Settings.from_env()
        return NullSyncWorker() if settings is None else SyncWorker(settings)
