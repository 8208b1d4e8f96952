"""The autoscaler of one bot: every `interval_s` it observes, asks the policy, acts.

Observing means: each live worker's readiness, the metrics it reported
through the SDK, its CPU percent (only if a metric wants it), and the
length of any Redis list named in the policy, read here (a Redis that does
not answer is a missing value, said once in the log, and retried). The
decision is `scaling.decide`, pure. While the bot is pinned
(`supervisor scale BOT N`) the policy still runs, so `status` shows what
it would do, but the pin decides; `supervisor scale BOT auto` hands the
bot back. Every change of the count is a `bot_scaled` event with its inputs.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import structlog

from supervisor.daemon.events import Events
from supervisor.daemon.fleet import Bot
from supervisor.policy import scaling
from supervisor.policy.scaling import Decision, History, Observation, Policy, Source, WorkerSample

log = structlog.get_logger("supervisor.autoscale")

_REDIS_TIMEOUT_S = 0.5


class Autoscaler:
    def __init__(self, bot: Bot, policy: Policy, events: Events) -> None:
        self.bot = bot
        self.policy = policy
        self.events = events
        self.history = History()
        self.last: Decision | None = None
        self.last_at: float | None = None
        self.evaluations = 0
        self._lists = RedisLists([m for m in policy.metrics if m.source is Source.REDIS_LIST])
        self._wants_cpu = any(m.source is Source.CPU for m in policy.metrics)
        bot.auto_desired = max(policy.min, min(policy.max, bot.auto_desired))

    async def run(self) -> None:
        try:
            while True:
                await anyio.sleep(self.policy.interval_s)
                external = await self._lists.lengths()
                self.step(time.monotonic(), external)
        finally:
            await self._lists.close()

    def observe(self, now: float, external: dict[str, float | None]) -> Observation:
        samples = []
        for slot in self.bot.slots.values():
            if not slot.alive or slot.stopping or slot.child is None:
                continue
            link = slot.link
            values: dict[str, float] = link.metrics() if link is not None else {}
            if self._wants_cpu:
                values = values | {"cpu": slot.child.sample()[0]}
            ready_at = link.ready_at if link is not None else None
            ready_for = now - ready_at if ready_at is not None else 0.0
            window = now - slot.child.cpu_since
            samples.append(WorkerSample(slot.ready, ready_for, values, cpu_window_s=window))
        return Observation(self.bot.desired, tuple(samples), external)

    def step(self, now: float, external: dict[str, float | None]) -> Decision:
        """One evaluation; applies the decision unless the bot is pinned or stopped."""
        decision = scaling.decide(self.policy, self.observe(now, external), self.history, now)
        self.history, self.last, self.last_at = decision.history, decision, now
        self.evaluations += 1
        previous = self.bot.auto_desired
        if decision.desired != previous:
            self.bot.auto_desired = decision.desired
            if self.bot.pin is None:
                self.events.emit(
                    "bot_scaled",
                    bot=self.bot.name,
                    desired=decision.desired,
                    previous=previous,
                    mode="auto",
                    reason=decision.reason,
                    recommended=decision.recommended,
                    metrics=[_reading(r) for r in decision.readings],
                )
                self.bot.poke()
        return decision

    def status(self, now: float) -> dict[str, Any]:
        d, at = self.last, self.last_at
        pin = self.bot.pin
        return {
            "min": self.policy.min,
            "max": self.policy.max,
            "auto_desired": self.bot.auto_desired,
            "evaluations": self.evaluations,
            "pin_outside_range": pin is not None and not self.policy.min <= pin <= self.policy.max,
            "metrics": [
                _reading(r) | {"target": spec.target}
                for r, spec in zip(d.readings if d else (), self.policy.metrics, strict=False)
            ],
            "last_decision": None
            if d is None or at is None
            else {"desired": d.desired, "reason": d.reason, "age_s": round(now - at, 3)},
        }


def _reading(r: scaling.MetricReading) -> dict[str, Any]:
    return {
        "metric": r.label,
        "value": r.value,
        "ratio": None if r.ratio is None else round(r.ratio, 3),
        "recommendation": r.recommendation,
        "note": r.note,
    }


class RedisLists:
    """Lengths of the Redis lists a policy scales on; None while Redis does not answer."""

    def __init__(self, specs: list[scaling.MetricSpec]) -> None:
        self._specs = specs
        self._clients: dict[str, Any] = {}
        self._down: set[str] = set()

    async def lengths(self) -> dict[str, float | None]:
        result: dict[str, float | None] = {}
        for spec in self._specs:
            result[spec.name] = await self._length(spec)
        return result

    async def _length(self, spec: scaling.MetricSpec) -> float | None:
        import redis.asyncio  # noqa: PLC0415  (only supervisors that scale on Redis need it)
        import redis.exceptions  # noqa: PLC0415

        client = self._clients.get(spec.url)
        if client is None:
            # No socket_timeout: redis-py then uses asyncio.wait_for, which on Python 3.11 can
            # swallow a cancellation (and hang our shutdown); our own cancel scope bounds it.
            client = redis.asyncio.Redis.from_url(spec.url)
            self._clients[spec.url] = client
        try:
            with anyio.fail_after(_REDIS_TIMEOUT_S):
                length = float(await client.llen(spec.name))
        except (redis.exceptions.RedisError, OSError, TimeoutError) as e:
            if spec.url not in self._down:
                self._down.add(spec.url)
                log.warning("redis_unreachable", url=spec.url, key=spec.name, error=str(e))
            return None
        if spec.url in self._down:
            self._down.discard(spec.url)
            log.info("redis_reachable", url=spec.url)
        return length

    async def close(self) -> None:
        for client in self._clients.values():
            with anyio.CancelScope(shield=True):
                await client.aclose()
