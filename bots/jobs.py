"""The Redis side of the at-least-once job queue that `bots/queue_worker.py` consumes.

Layout, for a queue named KEY (the bot's QUEUE_KEY):

    KEY                       list    jobs waiting; producers LPUSH, consumers take from the right
    KEY:processing:CONSUMER   list    the job one consumer holds (0 or 1 entries)
    KEY:lease:CONSUMER        string  "this consumer lives": a random token with a TTL, renewed
    KEY:consumers             set     every consumer that may hold a job, for recovery to visit

CONSUMER names one worker slot, `HOST/BOT/SLOT` unless set: the same after a restart, so a
restarted worker finds what it held, and different on every host and bot that shares KEY.

Why nothing is lost: from LPUSH until its acknowledgement a job is always in Redis, never only
in a worker's memory. BLMOVE moves it atomically from KEY to the taker's processing list; after
the work one MULTI removes it from there (and records it in the done list, if any). A worker
that dies leaves its job in its processing list: its next incarnation puts it back first thing
(`claim`), and if none comes (scaled down, crashed for good) its lease runs out and any other
consumer puts it back (`recover_lapsed`). Putting back is one Lua script per processing list,
so two consumers recovering at once move each job exactly once.

What can happen is a duplicate (at least once, not exactly once): a consumer whose lease
lapsed while it still worked (paused, cut off from Redis) finishes a job that was already
handed to someone else. A consumer id leaves KEY:consumers only when its worker exits with an
empty processing list; recovery never removes one, because a worker whose lease lapsed may
still be about to take a job.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

# Moves what a processing list holds back to the right end of the waiting list (taken next),
# unless the owner's lease is alive. Atomic, so a second recoverer finds the list empty.
_REQUEUE = """
if ARGV[1] ~= "force" and redis.call("EXISTS", KEYS[3]) == 1 then
    return 0
end
local moved = 0
while redis.call("LMOVE", KEYS[1], KEYS[2], "RIGHT", "RIGHT") do
    moved = moved + 1
end
return moved
"""

# On exit: drop our lease (only ours: a restarted worker may already hold a new one), and
# leave the consumer set unless a job is left behind for recovery to find.
_RETIRE = """
if redis.call("GET", KEYS[2]) == ARGV[1] then
    redis.call("DEL", KEYS[2])
end
if redis.call("LLEN", KEYS[1]) == 0 then
    return redis.call("SREM", KEYS[3], ARGV[2])
end
return 0
"""


def consumer_id(bot: str, slot: int, host: str | None = None) -> str:
    """The default consumer name: stable across restarts of one slot, unique across hosts."""
    return f"{host or socket.gethostname()}/{bot}/{slot}"


def processing_key(key: str, consumer: str) -> str:
    return f"{key}:processing:{consumer}"


def lease_key(key: str, consumer: str) -> str:
    return f"{key}:lease:{consumer}"


def consumers_key(key: str) -> str:
    return f"{key}:consumers"


@dataclass(frozen=True)
class Ack:
    """What acknowledging a job found: was it still ours, and how many jobs wait."""

    was_held: bool
    depth: int


class JobQueue:
    """One consumer's view of the queue: claim its slot, take, acknowledge, recover others."""

    def __init__(self, redis: Redis, key: str, consumer: str, lease_s: float) -> None:
        self.key = key
        self.consumer = consumer
        self.processing = processing_key(key, consumer)
        self._redis = redis
        self._lease = lease_key(key, consumer)
        self._lease_ms = max(1, round(lease_s * 1000))
        self._token = secrets.token_hex(8)  # this incarnation's; see _RETIRE
        self._requeue = redis.register_script(_REQUEUE)
        self._retire = redis.register_script(_RETIRE)

    async def claim(self) -> int:
        """Take the lease, register, and put back what a dead predecessor left; how many."""
        await self.renew()
        return await self._put_back(self.consumer, force=True)

    async def renew(self) -> None:
        """Keep the lease alive; registering again heals a consumer set lost with Redis."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._lease, self._token, px=self._lease_ms)
            pipe.sadd(consumers_key(self.key), self.consumer)
            await pipe.execute()

    async def take(self, timeout_s: float) -> bytes | None:
        """The next job, now in our processing list; None if none came within timeout_s."""
        job: bytes | None = await self._redis.blmove(
            self.key, self.processing, timeout_s, "RIGHT", "LEFT"
        )
        return job

    async def ack(self, job: bytes, done_key: str | None = None) -> Ack:
        """The job is finished: drop it from our processing list, record it, in one MULTI."""
        async with self._redis.pipeline(transaction=True) as pipe:
            if done_key:
                pipe.rpush(done_key, job)
            pipe.lrem(self.processing, 1, job)
            pipe.llen(self.key)
            replies: list[Any] = await pipe.execute()
        return Ack(was_held=replies[-2] == 1, depth=int(replies[-1]))

    async def give_back(self) -> int:
        """Put back what our processing list holds (a job taken but not started)."""
        return await self._put_back(self.consumer, force=True)

    async def depth(self) -> int:
        """Jobs waiting in the main list."""
        return int(await self._redis.llen(self.key))

    async def recover_lapsed(self) -> dict[str, int]:
        """Put back the jobs of other consumers whose lease ran out: {consumer: jobs moved}."""
        members = await self._redis.smembers(consumers_key(self.key))
        moved: dict[str, int] = {}
        for raw in members:
            other = raw.decode() if isinstance(raw, bytes) else str(raw)
            if other != self.consumer and (n := await self._put_back(other, force=False)):
                moved[other] = n
        return moved

    async def retire(self) -> bool:
        """On exit: drop our lease; True if we also left the consumer set (nothing held)."""
        keys = [self.processing, self._lease, consumers_key(self.key)]
        return bool(await self._retire(keys=keys, args=[self._token, self.consumer]))

    async def _put_back(self, consumer: str, force: bool) -> int:
        keys = [processing_key(self.key, consumer), self.key, lease_key(self.key, consumer)]
        return int(await self._requeue(keys=keys, args=["force" if force else ""]))
