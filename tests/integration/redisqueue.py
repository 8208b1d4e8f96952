"""A test's own Redis queue for bots/queue_worker.py, and the fixture that cleans it up."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
import redis

from bots.jobs import consumer_id, processing_key
from tests.integration.harness import REPO, Supervisor
from tests.services import RedisService

# Short leases and polls keep the tests quick; the defaults are for production.
FAST = {"QUEUE_LEASE_S": "1", "QUEUE_RECOVER_S": "0.2", "QUEUE_POLL_S": "0.2"}


class Queue:
    """A test's own queue: key names with a random suffix, seen through a sync client."""

    def __init__(self, url: str, name: str = "queue") -> None:
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.url = url
        self.key = f"qw-test-{name}-{secrets.token_hex(4)}"  # a key left behind names its test
        self.done_key = f"{self.key}:done"

    def push(self, *jobs: str) -> None:
        self.redis.lpush(self.key, *jobs)  # LPUSH, so the first job given is taken first

    def done(self) -> list[str]:
        return self.redis.lrange(self.done_key, 0, -1)

    def waiting(self) -> list[str]:
        return self.redis.lrange(self.key, 0, -1)

    def held(self, bot: str, slot: int) -> list[str]:
        return self.redis.lrange(processing_key(self.key, consumer_id(bot, slot)), 0, -1)

    def processing(self) -> dict[str, list[str]]:
        """Every processing list that exists, and what it holds."""
        keys = self.redis.scan_iter(match=processing_key(self.key, "*"), count=1000)
        return {k: self.redis.lrange(k, 0, -1) for k in keys}

    def drained(self) -> bool:
        """Nothing waits and nothing is held."""
        return not self.waiting() and not self.processing()

    def bot(self, name: str, workers: int, extra: str = "", **env: str) -> str:
        """A [bots.NAME] table that runs the queue worker on this queue."""
        values = {
            "PYTHONPATH": str(REPO),  # the workers' cwd is the supervisor's temporary directory
            "QUEUE_REDIS_URL": self.url,
            "QUEUE_KEY": self.key,
            "QUEUE_DONE_KEY": self.done_key,
            **FAST,
            **env,
        }
        table = ", ".join(f'{k} = "{v}"' for k, v in values.items())
        return (
            f'[bots.{name}]\nmodule = "bots.queue_worker:main"\nworkers = {workers}\n'
            f"env = {{ {table} }}\n{extra}\n"
        )

    def delete_all(self) -> None:
        keys = list(self.redis.scan_iter(match=f"{self.key}*", count=1000))
        if keys:
            self.redis.delete(*keys)


@pytest.fixture
def queue(
    sup: Supervisor, request: pytest.FixtureRequest, redis_service: RedisService
) -> Iterator[Queue]:
    """A fresh queue on the session's Redis; its keys are deleted once the workers are gone."""
    q = Queue(
        redis_service.url, name=re.sub(r"[^\w-]", "-", request.node.name.removeprefix("test_"))
    )  # no globs
    try:
        yield q
    finally:
        try:
            sup.cleanup()  # first: a live worker would renew its lease after we delete it
        finally:
            q.delete_all()
            assert not list(q.redis.scan_iter(match=f"{q.key}*")), "keys left behind"
            q.redis.close()
