"""The cache warmer: learns which keys the fleet reads, keeps them warm in Redis.

    [plugins.cache_warmer]
    redis_url = "redis://127.0.0.1:6379/0"  # the workers get it as $SUPERVISOR_CACHE_URL
    top_k = 1000                     # at most this many keys are kept warm
    refresh_before_expiry = "10%"    # of the key's TTL, or a duration such as "500ms"
    max_warms_per_s = 200            # refreshes asked for, fleet-wide
    min_reads = 1.0                  # predicted reads in the next TTL for a key to be worth it
    half_life_s = "30s"              # how fast old reads stop counting
    prewarm_keys = 100               # a bot's hottest keys refreshed when it scales up or restarts

Workers read through `worker.cache` (supervisor.cache), which reports each
access in their batches. The warmer keeps decayed read counts in a bounded
table and plans refreshes (hotkeys.py): a hot key is refreshed shortly
before it expires by one of the workers that read it, with that worker's
own loader, so the next reads hit. Bot code and database connections stay
in the workers; the warmer only decides.

Redis is pinged every second; while it does not answer the warmer is
`degraded`, sends no warms and pings with backoff (bots fall back to their
loaders meanwhile). When it answers again with another run id (it
restarted and lost its data), what was known about expiries is dropped
and the hottest keys are warmed again.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
import structlog

from supervisor.config.fields import BadValue, Table, duration, integer, number, positive, string
from supervisor.errors import ProtocolError
from supervisor.plugins.base import Host, Metric, Plugin, WorkerRef
from supervisor.plugins.cache_warmer.hotkeys import HotKeys, Lead, Planner, Warm
from supervisor.wire import cache as wire_cache
from supervisor.wire import protocol

log = structlog.get_logger("supervisor.cache_warmer")

TICK_S = 0.025
_WORKERS_EVERY_S = 0.5
_HIT_WINDOW_S = 60  # the rolling hit rate covers this many seconds
_PING_S = 1.0
_PING_BACKOFF_S = (0.5, 10.0)
_PING_TIMEOUT_S = 1.0
_CANDIDATES = 4  # keys tracked per key kept warm


@dataclass(frozen=True, slots=True)
class WarmerConfig:
    redis_url: str = wire_cache.DEFAULT_URL
    top_k: int = 1000
    refresh_before_expiry: Lead = field(default_factory=lambda: Lead(fraction=0.1))
    max_warms_per_s: float = 200.0
    min_reads: float = 1.0
    half_life_s: float = 30.0
    prewarm_keys: int = 100


def _lead(value: Any) -> Lead:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            percent = -1.0
        if 0 < percent < 100:
            return Lead(fraction=percent / 100)
        raise BadValue(f'expected a percentage of the TTL from 0% to 100%, got "{value}"')
    try:
        return Lead(seconds=duration(value))
    except BadValue:
        raise BadValue(
            'expected a share of the TTL such as "10%", or a duration such as "500ms", '
            f"got {value!r}"
        ) from None


def _check_reads(m: list[Any]) -> None:
    ok = (
        len(m) == 8
        and type(m[1]) is str
        and 0 < len(m[1]) <= protocol.MAX_KEY
        and all(type(v) is int and v >= 0 for v in (m[2], m[3], m[4]))
        and type(m[5]) in (int, float)
        and m[5] >= 0
        and type(m[6]) is int
        and m[6] >= -1
        and type(m[7]) is int
        and m[7] >= 0
    )
    if not ok:
        raise ProtocolError(
            "CACHE_READS is [32, key, hits, misses, early, load_ms, ttl_left_ms, ttl_ms]"
        )


def _check_warmed(m: list[Any]) -> None:
    ok = (
        len(m) == 5
        and type(m[1]) is str
        and 0 < len(m[1]) <= protocol.MAX_KEY
        and m[2] in wire_cache.WARM_OUTCOMES
        and type(m[3]) in (int, float)
        and type(m[4]) is int
    )
    if not ok:
        raise ProtocolError("WARMED is [33, key, outcome, load_ms, ttl_ms]")


class _Reads:
    """One bot's reads, per second, for a rolling hit rate."""

    def __init__(self) -> None:
        self.seconds: deque[list[int]] = deque()  # [second, hits, misses]
        self.hits = self.misses = self.early = 0
        self.load_ms = 0.0

    def add(self, now: float, hits: int, misses: int) -> None:
        second = int(now)
        if not self.seconds or self.seconds[-1][0] != second:
            self.seconds.append([second, 0, 0])
            while self.seconds[0][0] <= second - _HIT_WINDOW_S:
                self.seconds.popleft()
        bucket = self.seconds[-1]
        bucket[1] += hits
        bucket[2] += misses

    def hit_rate(self, now: float) -> float | None:
        since = int(now) - _HIT_WINDOW_S
        hits = sum(b[1] for b in self.seconds if b[0] > since)
        reads = hits + sum(b[2] for b in self.seconds if b[0] > since)
        return hits / reads if reads else None


class CacheWarmer(Plugin):
    name = "cache_warmer"
    subscribe = frozenset({"worker_ready", "bot_scaled"})
    message_kinds: ClassVar[dict[int, Any]] = {
        wire_cache.CACHE_READS: _check_reads,
        wire_cache.WARMED: _check_warmed,
    }
    config: WarmerConfig

    @classmethod
    def configure(cls, table: Table) -> WarmerConfig:
        config = WarmerConfig(
            redis_url=table.take("redis_url", string, wire_cache.DEFAULT_URL),
            top_k=table.take("top_k", integer(1), 1000),
            refresh_before_expiry=table.take("refresh_before_expiry", _lead, Lead(fraction=0.1)),
            max_warms_per_s=table.take("max_warms_per_s", positive, 200.0),
            min_reads=table.take("min_reads", number(0), 1.0),
            half_life_s=table.take("half_life_s", duration, 30.0),
            prewarm_keys=table.take("prewarm_keys", integer(0), 100),
        )
        table.finish()
        if config.half_life_s <= 0:
            table.problems.append(f"{table.key_path('half_life_s')}: must be more than 0")
        if not config.redis_url.startswith(("redis://", "rediss://", "unix://")):
            table.problems.append(
                f"{table.key_path('redis_url')}: expected a redis://, rediss:// or unix:// URL, "
                f'got "{config.redis_url}"'
            )
        return config

    @classmethod
    def worker_env(cls, config: WarmerConfig) -> dict[str, str]:
        return {wire_cache.URL_ENV: config.redis_url, wire_cache.REPORT_ENV: "1"}

    def __init__(self, config: WarmerConfig) -> None:
        super().__init__(config)
        now = time.monotonic()
        self.keys = HotKeys(config.top_k * _CANDIDATES, config.half_life_s, now)
        self.planner = Planner(
            self.keys,
            top_k=config.top_k,
            lead=config.refresh_before_expiry,
            min_reads=config.min_reads,
            max_warms_per_s=config.max_warms_per_s,
            tick_s=TICK_S,
            now=now,
        )
        self.reads: dict[str, _Reads] = {}
        self.warms: dict[str, int] = dict.fromkeys(("sent", *wire_cache.WARM_OUTCOMES), 0)
        self.redis_up: bool | None = None  # None: not asked yet
        self.redis_error = ""
        self._run_id = ""
        self._host: Host | None = None
        self._workers: dict[str, list[int]] = {}  # bot -> ready slots
        self._workers_at = -1.0
        self._spread = 0

    # ------------------------------------------------------------ the hot path

    def on_message(self, worker: WorkerRef, message: list[Any]) -> None:
        now = time.monotonic()
        if message[0] == wire_cache.CACHE_READS:
            _, key, hits, misses, early, load_ms, left_ms, ttl_ms = message
            reads = self.reads.get(worker.bot)
            if reads is None:
                reads = self.reads[worker.bot] = _Reads()
            reads.add(now, hits, misses)
            reads.hits += hits
            reads.misses += misses
            reads.early += early
            reads.load_ms += load_ms
            left = None if left_ms < 0 else left_ms / 1000
            self.planner.read(key, worker.bot, worker.slot, hits, misses, left, ttl_ms / 1000, now)
        else:
            _, key, outcome, _load_ms, ttl_ms = message
            self.warms[outcome] += 1
            self.planner.warmed(key, outcome == "ok", ttl_ms / 1000, now)

    # ------------------------------------------------------------ the plugin's task

    async def run(self, host: Host) -> None:
        self._host = host
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_redis)
            while True:
                if self.redis_up:
                    self._dispatch(host, self.planner.plan(time.monotonic()))
                await anyio.sleep(TICK_S)

    async def on_event(self, event: str, fields: dict[str, Any]) -> None:
        bot = fields.get("bot")
        if not isinstance(bot, str) or not self.config.prewarm_keys:
            return
        if event == "bot_scaled" and not fields.get("desired", 0) > fields.get("previous", 0):
            return
        queued = self.planner.prewarm(bot, self.config.prewarm_keys, time.monotonic())
        if queued and self._host is not None:
            self._host.emit("cache_prewarm", bot=bot, keys=queued, after=event)

    def _dispatch(self, host: Host, warms: list[Warm]) -> None:
        if not warms:
            return
        now = time.monotonic()
        if now - self._workers_at >= _WORKERS_EVERY_S:
            self._workers = {}
            for w in host.workers():
                if w.ready:
                    self._workers.setdefault(w.bot, []).append(w.slot)
            self._workers_at = now
        by_worker: dict[tuple[str, int], list[str]] = {}
        for warm in warms:
            slots = self._workers.get(warm.bot)
            if not slots:
                self.planner.warmed(warm.key, False, 0.0, now)
                continue
            slot = warm.slot
            if slot not in slots:  # that worker is gone: any of its bot's can load the key
                self._spread += 1
                slot = slots[self._spread % len(slots)]
            by_worker.setdefault((warm.bot, slot), []).append(warm.key)
        for (bot, slot), keys in by_worker.items():
            sent = host.send(bot, slot, "warm", {"keys": keys})
            self.warms["sent"] += len(keys) if sent else 0

    async def _watch_redis(self) -> None:
        import redis.asyncio  # noqa: PLC0415  (only supervisors with the warmer need it)

        # No socket_timeout (see autoscale.RedisLists): our own cancel scope bounds each call.
        client = redis.asyncio.Redis.from_url(self.config.redis_url)
        failures = 0
        try:
            while True:
                try:
                    with anyio.fail_after(_PING_TIMEOUT_S):
                        info = await client.info("server")
                except Exception as e:  # down, refusing, slow: all mean "not now"
                    failures += 1
                    self._redis_down(e)
                    first, most = _PING_BACKOFF_S
                    await anyio.sleep(min(most, first * 2 ** (failures - 1)))
                    continue
                failures = 0
                self._redis_answered(str(info.get("run_id", "")))
                await anyio.sleep(_PING_S)
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    def _redis_down(self, error: Exception) -> None:
        self.redis_error = f"{type(error).__name__}: {error}"
        if self.redis_up is not False:
            self.redis_up = False
            if self._host is not None:
                self._host.emit(
                    "cache_redis_unreachable", "warning",
                    url=self.config.redis_url, error=self.redis_error,
                )  # fmt: skip

    def _redis_answered(self, run_id: str) -> None:
        was = self.redis_up
        self.redis_up, self.redis_error = True, ""
        restarted = bool(self._run_id) and run_id != self._run_id
        self._run_id = run_id
        if restarted:
            self.planner.forget_expiries()
        if was is False and self._host is not None:
            self._host.emit("cache_redis_reachable", url=self.config.redis_url, restarted=restarted)
        if restarted:
            now = time.monotonic()
            for bot in list(self.reads):
                self.planner.prewarm(bot, self.config.prewarm_keys, now)

    # ------------------------------------------------------------ what it shows

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        rates = {bot: r.hit_rate(now) for bot, r in sorted(self.reads.items())}
        summary = ", ".join(f"{b} hit rate {r:.0%}" for b, r in rates.items() if r is not None)
        return {
            "degraded": self.redis_up is False,
            "reason": f"Redis unreachable: {self.redis_error}" if self.redis_up is False else "",
            "summary": f"{summary}; {len(self.keys.entries)} keys tracked, {self.warms['ok']} warms"
            if summary
            else "",
            "redis": {None: "unknown", True: "reachable", False: "unreachable"}[self.redis_up],
            "redis_error": self.redis_error,
            "keys_tracked": len(self.keys.entries),
            "hit_rate": {bot: _round(rate) for bot, rate in rates.items()},
            "reads": {
                bot: {"hits": r.hits, "misses": r.misses, "early_refreshes": r.early}
                for bot, r in sorted(self.reads.items())
            },
            "warms": dict(self.warms) | {"skipped": dict(self.planner.counts)},
            "hottest": [
                {"key": e.key, "bot": e.bot, "reads_per_s": round(self.keys.rate(e, now), 2)}
                for e in self.keys.hottest(5)
            ],
        }

    def metrics(self) -> list[Metric]:
        now = time.monotonic()
        bots = sorted(self.reads.items())
        return [
            Metric(
                "supervisor_cache_hit_ratio",
                "gauge",
                f"Cache hits per read over the last {_HIT_WINDOW_S}s, per bot.",
                tuple(({"bot": b}, rate) for b, r in bots if (rate := r.hit_rate(now)) is not None),
            ),
            Metric(
                "supervisor_cache_reads",
                "counter",
                "Cache reads reported by workers, by result.",
                tuple(
                    ({"bot": b, "result": result}, float(n))
                    for b, r in bots
                    for result, n in (("hit", r.hits), ("miss", r.misses))
                ),
            ),
            Metric(
                "supervisor_cache_keys_tracked",
                "gauge",
                "Keys the warmer counts reads of.",
                (({}, float(len(self.keys.entries))),),
            ),
            Metric(
                "supervisor_cache_warms",
                "counter",
                "Refreshes asked for (sent) and their outcomes.",
                tuple(({"outcome": o}, float(n)) for o, n in self.warms.items()),
            ),
            Metric(
                "supervisor_cache_redis_up",
                "gauge",
                "1 while the cache's Redis answers.",
                (({}, 1.0 if self.redis_up else 0.0),),
            ),
        ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
