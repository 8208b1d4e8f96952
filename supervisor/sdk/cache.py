"""A read-through cache on Redis for bots, whose reads the supervisor can see.

    async with Worker.connect() as w:
        user = await w.cache.get(f"user:{uid}", lambda: db.fetch_user(uid), ttl_s=30)

    with Worker.connect_sync() as w:
        user = w.cache.get(f"user:{uid}", lambda: db.fetch_user(uid), ttl_s=30)

`get` returns the cached value, or calls the loader, stores what it returns
for `ttl_s` and returns it. The loader may be a plain function or a
coroutine function (async cache); concurrent gets of one key in one worker
share one load. Values are stored with msgpack (with the
loader's cost beside them, for XFetch), so they must be msgpack types, or
give `encode`/`decode` to `open_cache`.

When the supervisor runs the cache warmer, each access (key, hit or miss,
load time, time left to live) is added to the next batch, summed per key
between batches, so a hot key costs one small message per 50 ms however
often it is read. The warmer may ask this worker to refresh keys before
they expire; the worker does that with the loader it last used for the key
(or `default_loader(key)`), in the background: an async bot's warms run as
a task in its loop, a sync bot's in `beat()`, between its own jobs. So bot
code and its database connections stay in the workers.

If Redis does not answer, `get` calls the loader and returns its value
(nothing is cached), and Redis is tried again after a backoff (0.25 s
doubling to 5 s): a bot keeps working without its cache.

`xfetch_beta > 0` turns on XFetch (Vattani et al., VLDB 2015): a reader
recomputes a value early, with a probability that rises as its TTL ends,
in proportion to how long the loader took. That is the per-worker answer
to expiring hot keys, kept here so the warmer can be measured against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import os
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from supervisor.wire import protocol
from supervisor.wire.cache import (
    CACHE_READS,
    DEFAULT_URL,
    REPORT_ENV,
    URL_ENV,
    WARMED,
)

if TYPE_CHECKING:
    from supervisor.sdk.link import Link


_REMEMBER = 10_000  # keys whose loader we keep, for warms
_WARM_QUEUE = 1024
_PENDING_KEYS = 512  # a batch of reports goes out at this many keys (or with the next flush)
_BACKOFF_S = (0.25, 5.0)
_TIMEOUT_S = 0.5
_BAD = object()

Loader = Callable[[], Any]


class CacheStats:
    __slots__ = ("early", "errors", "hits", "loads", "misses", "warms", "warms_failed")

    def __init__(self) -> None:
        self.hits = self.misses = self.early = self.loads = self.errors = 0
        self.warms = self.warms_failed = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class _Core:
    """What the async and sync caches share: bookkeeping, reports, the codec, XFetch."""

    def __init__(
        self,
        link: Link | None,
        url: str | None = None,
        *,
        default_ttl_s: float = 60.0,
        default_loader: Callable[[str], Any] | None = None,
        xfetch_beta: float = 0.0,
        encode: Callable[[Any], Any] | None = None,
        decode: Callable[[Any], Any] | None = None,
        timeout_s: float = _TIMEOUT_S,
    ) -> None:
        self.url = url or os.environ.get(URL_ENV) or DEFAULT_URL
        self.default_ttl_s = default_ttl_s
        self.default_loader = default_loader
        self.xfetch_beta = xfetch_beta
        self.stats = CacheStats()
        self._link = link
        self._reporting = link is not None and os.environ.get(REPORT_ENV) == "1"
        self._encode = encode
        self._decode = decode
        self._timeout_s = timeout_s
        self._loaders: OrderedDict[str, tuple[Loader | None, float]] = OrderedDict()
        self._pending: dict[str, list[float]] = {}
        self._warms: deque[str] = deque()
        self._down_until = 0.0
        self._failures = 0
        self._random = random.Random()
        if link is not None and self._reporting:
            link.add_collector(self._collect)

    @property
    def redis_up(self) -> bool:
        return self._failures == 0

    # ------------------------------------------------------------ bookkeeping

    def _prepare(
        self, key: str, loader: Loader | None, ttl_s: float | None
    ) -> tuple[Loader, float]:
        ttl = self.default_ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            raise ValueError("ttl_s must be > 0")
        loaders = self._loaders
        loaders[key] = (loader, ttl)
        loaders.move_to_end(key)
        if len(loaders) > _REMEMBER:
            loaders.popitem(last=False)
        if loader is None:
            if self.default_loader is None:
                raise ValueError("get() needs a loader (or give default_loader to open_cache)")
            default = self.default_loader
            return lambda: default(key), ttl
        return loader, ttl

    def _try_redis(self) -> bool:
        return time.monotonic() >= self._down_until

    def _redis_failed(self) -> None:
        self.stats.errors += 1
        self._failures += 1
        first, most = _BACKOFF_S
        self._down_until = time.monotonic() + min(most, first * 2 ** (self._failures - 1))

    def _redis_ok(self) -> None:
        self._failures = 0

    def _found(self, raw: bytes | None, pttl: int) -> tuple[Any, float, bool]:
        """(value, ttl left in s, recompute early?) of what Redis held; value _BAD if nothing."""
        if raw is None:
            return _BAD, 0.0, False
        try:
            delta_ms, stored = msgpack.unpackb(raw, raw=False)
            value = stored if self._decode is None else self._decode(stored)
        except Exception:  # not ours, or from an older codec: load it anew
            return _BAD, 0.0, False
        left_s = pttl / 1000 if pttl > 0 else math.inf
        early = False
        if self.xfetch_beta > 0 and left_s != math.inf:
            gap = -float(delta_ms) / 1000 * self.xfetch_beta * math.log(1.0 - self._random.random())
            early = gap >= left_s
        return value, left_s, early

    def _pack(self, value: Any, load_s: float) -> bytes:
        stored = value if self._encode is None else self._encode(value)
        return msgpack.packb([round(load_s * 1000, 3), stored], use_bin_type=True)  # type: ignore[no-any-return]

    def _note(  # noqa: PLR0917  (the hot path: no keyword packing)
        self, key: str, hit: bool, early: bool, load_s: float, left_s: float, ttl_s: float
    ) -> None:
        """Count one access, and add it to this key's report."""
        stats = self.stats
        if early:
            stats.early += 1
            stats.hits += 1
        elif hit:
            stats.hits += 1
        else:
            stats.misses += 1
        if not self._reporting or len(key) > protocol.MAX_KEY:
            return
        expires = time.monotonic() + left_s if left_s != math.inf else 0.0
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = [hit, not hit, early, load_s * 1000, expires, ttl_s]
            if len(self._pending) >= _PENDING_KEYS and self._link is not None:
                self._link.flush()
            elif self._link is not None:
                self._link.collected()
        else:
            entry[0] += hit
            entry[1] += not hit
            entry[2] += early
            entry[3] += load_s * 1000
            entry[4] = expires
            entry[5] = ttl_s

    def _collect(self) -> list[list[Any]]:
        """The reports since the last batch (the link calls this when it flushes)."""
        if not self._pending:
            return []
        now = time.monotonic()
        out = [
            [
                CACHE_READS,
                key,
                int(e[0]),
                int(e[1]),
                int(e[2]),
                round(e[3], 3),
                -1 if e[4] == 0.0 else max(0, int((e[4] - now) * 1000)),
                int(e[5] * 1000),
            ]
            for key, e in self._pending.items()
        ]
        self._pending = {}
        return out

    # ------------------------------------------------------------ warms

    def request_warm(self, keys: list[str]) -> None:
        """The supervisor asks for these keys to be refreshed (served in the background)."""
        for key in keys:
            if len(self._warms) >= _WARM_QUEUE:
                self._warmed(key, "busy", 0.0, 0.0)
            else:
                self._warms.append(key)

    def _warm_start(self, key: str) -> tuple[Loader, float] | None:
        """The loader and TTL to warm a key with; None (reported) if it cannot be now."""
        loader, ttl = self._loaders.get(key, (None, self.default_ttl_s))
        if loader is None and self.default_loader is not None:
            default = self.default_loader
            loader = lambda: default(key)  # noqa: E731
        if loader is None:
            self._warmed(key, "no_loader", 0.0, 0.0)
            return None
        if not self._try_redis():
            self._warmed(key, "redis_down", 0.0, 0.0)
            return None
        return loader, ttl

    def _warmed(self, key: str, outcome: str, load_s: float, ttl_s: float) -> None:
        if outcome == "ok":
            self.stats.warms += 1
        else:
            self.stats.warms_failed += 1
        if self._reporting and self._link is not None:
            self._link.report([WARMED, key, outcome, round(load_s * 1000, 3), int(ttl_s * 1000)])


class AsyncCache(_Core):
    """The cache of an asyncio bot: `await w.cache.get(key, loader, ttl_s)`."""

    def __init__(self, link: Link | None, url: str | None = None, **options: Any) -> None:
        super().__init__(link, url, **options)
        import redis.asyncio  # noqa: PLC0415  (only bots that cache need it)

        # No socket_timeout: redis-py would use asyncio.wait_for, which on Python 3.11 can
        # swallow a cancellation; asyncio.timeout bounds each call instead.
        self._redis = redis.asyncio.Redis.from_url(self.url)
        self._warm_task: asyncio.Task[None] | None = None
        self._loading: dict[str, asyncio.Future[Any]] = {}  # one load per key at a time
        self.warm_concurrency = 4

    async def get(self, key: str, loader: Loader | None = None, ttl_s: float | None = None) -> Any:
        load, ttl = self._prepare(key, loader, ttl_s)
        reachable = self._try_redis()
        early = False
        if reachable:
            try:
                async with asyncio.timeout(self._timeout_s):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.get(key)
                        pipe.pttl(key)
                        raw, pttl = await pipe.execute()
            except Exception:  # Redis down, slow or confused: the loader still answers
                self._redis_failed()
                reachable = False
            else:
                self._redis_ok()
                value, left_s, early = self._found(raw, pttl)
                if value is not _BAD and not early:
                    self._note(key, True, False, 0.0, left_s, ttl)
                    return value
        loading = self._loading.get(key)
        if loading is not None:  # this worker is loading it already: wait for that load
            value = await asyncio.shield(loading)
            self._note(key, early, early, 0.0, ttl, ttl)
            return value
        loading = self._loading[key] = asyncio.get_running_loop().create_future()
        try:
            value, load_s = await self._load(load)
            if reachable:
                await self._store(key, value, load_s, ttl)
        except BaseException as e:
            loading.set_exception(e)
            loading.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[key]
        loading.set_result(value)
        self._note(key, early, early, load_s, ttl, ttl)
        return value

    async def _load(self, loader: Loader) -> tuple[Any, float]:
        self.stats.loads += 1
        started = time.monotonic()
        value = loader()
        if inspect.isawaitable(value):
            value = await value
        return value, time.monotonic() - started

    async def _store(self, key: str, value: Any, load_s: float, ttl_s: float) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._redis.set(key, self._pack(value, load_s), px=max(1, int(ttl_s * 1000)))
        except Exception:
            self._redis_failed()
            return False
        self._redis_ok()
        return True

    def request_warm(self, keys: list[str]) -> None:
        super().request_warm(keys)
        if self._warm_task is None or self._warm_task.done():
            self._warm_task = asyncio.get_running_loop().create_task(
                self._serve_warms(), name="supervisor-cache-warms"
            )

    async def _serve_warms(self) -> None:
        """Refresh requested keys, a few at a time, yielding to the bot between them."""
        while self._warms:
            batch = [
                self._warms.popleft() for _ in range(min(self.warm_concurrency, len(self._warms)))
            ]
            await asyncio.gather(*(self._warm(key) for key in batch))
            await asyncio.sleep(0)

    async def _warm(self, key: str) -> None:
        found = self._warm_start(key)
        if found is None:
            return
        loader, ttl = found
        try:
            value, load_s = await self._load(loader)
        except Exception:
            self._warmed(key, "failed", 0.0, ttl)
            return
        stored = await self._store(key, value, load_s, ttl)
        self._warmed(key, "ok" if stored else "redis_down", load_s, ttl)

    async def aclose(self) -> None:
        if self._warm_task is not None:
            self._warm_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warm_task
        await self._redis.aclose()


class SyncCache(_Core):
    """The cache of a sync bot: `w.cache.get(key, loader, ttl_s)`; warms run in `beat()`."""

    def __init__(self, link: Link | None, url: str | None = None, **options: Any) -> None:
        super().__init__(link, url, **options)
        import redis  # noqa: PLC0415

        self._redis = redis.Redis.from_url(
            self.url, socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s
        )
        self.warm_budget_s = 0.02

    def get(self, key: str, loader: Loader | None = None, ttl_s: float | None = None) -> Any:
        load, ttl = self._prepare(key, loader, ttl_s)
        reachable = self._try_redis()
        early = False
        if reachable:
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.get(key)
                pipe.pttl(key)
                raw, pttl = pipe.execute()
            except Exception:
                self._redis_failed()
                reachable = False
            else:
                self._redis_ok()
                value, left_s, early = self._found(raw, pttl)
                if value is not _BAD and not early:
                    self._note(key, True, False, 0.0, left_s, ttl)
                    return value
        value, load_s = self._load(load)
        if reachable:
            self._store(key, value, load_s, ttl)
        self._note(key, early, early, load_s, ttl, ttl)
        return value

    def _store(self, key: str, value: Any, load_s: float, ttl_s: float) -> bool:
        try:
            self._redis.set(key, self._pack(value, load_s), px=max(1, int(ttl_s * 1000)))
        except Exception:
            self._redis_failed()
            return False
        self._redis_ok()
        return True

    def serve_warms(self, budget_s: float | None = None) -> int:
        """Refresh requested keys for up to budget_s (the SDK calls this from `beat()`)."""
        deadline = time.monotonic() + (self.warm_budget_s if budget_s is None else budget_s)
        done = 0
        while self._warms and time.monotonic() < deadline:
            self._warm(self._warms.popleft())
            done += 1
        return done

    def _warm(self, key: str) -> None:
        found = self._warm_start(key)
        if found is None:
            return
        loader, ttl = found
        try:
            value, load_s = self._load(loader)
        except Exception:
            self._warmed(key, "failed", 0.0, ttl)
            return
        stored = self._store(key, value, load_s, ttl)
        self._warmed(key, "ok" if stored else "redis_down", load_s, ttl)

    def _load(self, loader: Loader) -> tuple[Any, float]:
        self.stats.loads += 1
        started = time.monotonic()
        value = loader()
        return value, time.monotonic() - started

    def close(self) -> None:
        self._redis.close()
