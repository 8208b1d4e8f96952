"""queue_worker: takes jobs from a Redis list, at least once, and reports through the SDK.

Run by the supervisor as `module = "bots.queue_worker:main"`; standalone as
`python -m bots.queue_worker` (the SDK does nothing then). The queue's layout in Redis and
why no job is lost are in `bots/jobs.py`; this module is the worker's loop around it.

Environment (a bot's `env` table in supervisor.toml):

    QUEUE_REDIS_URL     redis://127.0.0.1:6379/0  where the queue lives
    QUEUE_KEY           jobs       the list producers LPUSH jobs to (any bytes)
    QUEUE_JOB_S         0.05       seconds of simulated work per job
    QUEUE_DONE_KEY      (unset)    if set, each finished job's payload is RPUSHed there
    QUEUE_LEASE_S       5          a consumer silent this long is taken for dead, and
                                   its job is put back by the others
    QUEUE_RECOVER_S     2          how often to look for such consumers
    QUEUE_POLL_S        1          longest wait for a job; bounds how long an idle worker
                                   takes to notice a drain or a stop
    QUEUE_STOP_GRACE_S  1          on SIGTERM, how long the job in hand may take to finish;
                                   past that it is left in the processing list for recovery
    QUEUE_RETRY_MAX_S   5          longest wait between attempts to reach Redis
    QUEUE_CONSUMER      HOST/BOT/SLOT  names the processing list and lease; must be stable
                                   across restarts of a slot and unique among live workers

The slot comes from SUPERVISOR_WORKER (0 standalone), the bot from SUPERVISOR_BOT.

Reports: gauges `queue_depth` (jobs waiting) and `inflight` (0 or 1), counter `jobs_done`;
READY once Redis first answers. While Redis cannot be reached the worker says so once and
retries, with a capped backoff, for as long as it lives: a crash loop would not bring Redis
back, and would only get the bot marked failed. (The supervisor still restarts a worker that
is not READY within its bot's `ready_timeout_s`, 60 s by default: where Redis may be away
longer when the fleet starts, raise it or set it to 0, no limit.)

A `drain` from the supervisor lets the worker finish the job in hand, take no more and exit
0; SIGTERM (or SIGINT, or the supervisor's `stop`) does the same if the job ends within
QUEUE_STOP_GRACE_S, and otherwise leaves it in the processing list, unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bots.jobs import JobQueue, consumer_id
from supervisor.worker import AsyncWorker, Control, NullWorker, Worker

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
_FIRST_RETRY_S = 0.1
_CLOSE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class QueueConfig:
    """The bot's settings, read once from its environment (see the module docstring)."""

    redis_url: str
    key: str
    job_s: float
    done_key: str | None
    lease_s: float
    recover_s: float
    poll_s: float
    stop_grace_s: float
    retry_max_s: float
    consumer: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QueueConfig:
        slot = int(env.get("SUPERVISOR_WORKER", "0"))
        bot = env.get("SUPERVISOR_BOT", "queue_worker")
        return cls(
            redis_url=env.get("QUEUE_REDIS_URL", "redis://127.0.0.1:6379/0"),
            key=env.get("QUEUE_KEY", "jobs"),
            job_s=float(env.get("QUEUE_JOB_S", "0.05")),
            done_key=env.get("QUEUE_DONE_KEY") or None,
            lease_s=float(env.get("QUEUE_LEASE_S", "5")),
            recover_s=float(env.get("QUEUE_RECOVER_S", "2")),
            poll_s=float(env.get("QUEUE_POLL_S", "1")),
            stop_grace_s=float(env.get("QUEUE_STOP_GRACE_S", "1")),
            retry_max_s=float(env.get("QUEUE_RETRY_MAX_S", "5")),
            consumer=env.get("QUEUE_CONSUMER") or consumer_id(bot, slot),
        )


def connect_redis(config: QueueConfig) -> Redis:
    """A client that fails fast and never retries by itself: a retried BLMOVE could strand
    the job the first attempt moved, so every connection error comes to our own loop."""
    return Redis.from_url(
        config.redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=config.poll_s + 5.0,  # a BLMOVE waits up to poll_s for its reply
        retry=Retry(NoBackoff(), 0),
    )


class QueueWorker:
    """One worker: connect, claim the slot, then take, work and acknowledge until told to go."""

    def __init__(self, config: QueueConfig, sdk: AsyncWorker | NullWorker, redis: Redis) -> None:
        self.config = config
        self._sdk = sdk
        self._redis = redis
        self._queue = JobQueue(redis, config.key, config.consumer, config.lease_s)
        self._leave = asyncio.Event()  # drain or stop: take no more
        self._stop = asyncio.Event()  # stop: the job in hand gets stop_grace_s
        self._closing = asyncio.Event()  # the upkeep ends at its next turn
        self._held: bytes | None = None  # in our processing list, not yet acknowledged
        self._finished = False  # ... and done: only its acknowledgement is missing
        self._down = False  # Redis unreachable, and we said so
        self._ready = False
        self._upkeep: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None  # the upkeep's, re-raised by run()

    # ------------------------------------------------------------ what tells us to go

    def on_control(self, control: Control) -> None:
        """The supervisor's commands: drain finishes the job in hand; stop is a SIGTERM."""
        if control.kind == "drain":
            self.say("draining: " + self._in_hand())
            self._leave.set()
        elif control.kind == "stop":
            self.stop()

    def stop(self) -> None:
        """SIGTERM (or SIGINT, or the supervisor's STOP)."""
        if not self._stop.is_set():
            self.say("stopping: " + self._in_hand())
        self._stop.set()
        self._leave.set()

    def _in_hand(self) -> str:
        return "idle" if self._held is None else "finishing the job in hand"

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Until told to go: (re)connect, resume, serve; Redis going away sends us back."""
        try:
            while not self._leave.is_set():
                try:
                    if await self._connect():
                        await self._resume()
                        await self._serve()
                except REDIS_DOWN as e:
                    self._went_down(e)
        finally:
            await self._close()
        if self._failure is not None:
            raise self._failure

    async def _connect(self) -> bool:
        """Wait until Redis answers, with a capped backoff; False if told to go meanwhile."""
        delay_s = _FIRST_RETRY_S
        while not self._leave.is_set():
            try:
                await self._redis.ping()
            except REDIS_DOWN as e:
                self._went_down(e)
                await _wait(self._leave, delay_s)
                delay_s = min(delay_s * 2, self.config.retry_max_s)
            else:
                return True
        return False

    async def _resume(self) -> None:
        """After (re)connecting: claim our slot and settle what the last connection left."""
        if self._held is not None and self._finished:
            await self._ack()  # finished while Redis was away
        moved = await self._queue.claim()  # also what a lost BLMOVE reply put there
        if moved:
            self.say(f"put back {moved} job(s) left in {self._queue.processing}")
        self._came_up()
        self._sdk.gauge("inflight", 0)
        self._sdk.gauge("queue_depth", await self._queue.depth())
        if not self._ready:
            self._ready = True
            self._sdk.ready()
        if self._upkeep is None:
            self._upkeep = asyncio.create_task(self._keep_up(), name="queue-upkeep")
            self._upkeep.add_done_callback(self._upkeep_ended)

    async def _serve(self) -> None:
        """Take, work, acknowledge; Redis errors go up to run()."""
        while not self._leave.is_set():
            job = await self._queue.take(self.config.poll_s)
            if job is None:
                self._sdk.gauge("queue_depth", await self._queue.depth())
                continue
            self._held, self._finished = job, False
            self._sdk.gauge("inflight", 1)
            if self._leave.is_set():  # told to go while we waited: not started, so give it back
                await self._queue.give_back()
                self._held = None
                self._sdk.gauge("inflight", 0)
                return
            self._finished = await self._work(job)
            if not self._finished:
                return  # stopped past the grace period: left for recovery, never acknowledged
            await self._ack()

    async def _work(self, job: bytes) -> bool:
        """The job's work (simulated: QUEUE_JOB_S of sleep); False if a stop came and it did
        not end within the grace period."""
        work = asyncio.create_task(asyncio.sleep(self.config.job_s))
        stopped = asyncio.create_task(self._stop.wait())
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not work.done():
            await asyncio.wait({work}, timeout=self.config.stop_grace_s)
        if not work.done():
            work.cancel()
            self.say(f"left an unfinished job in {self._queue.processing} for recovery")
            return False
        return True

    async def _ack(self) -> None:
        assert self._held is not None
        ack = await self._queue.ack(self._held, self.config.done_key)
        if not ack.was_held:
            self.say("a job we finished had been put back (our lease lapsed): it runs again")
        self._held, self._finished = None, False
        self._sdk.count("jobs_done")
        self._sdk.gauge("inflight", 0)
        self._sdk.gauge("queue_depth", ack.depth)

    # ------------------------------------------------------------ alongside the loop

    async def _keep_up(self) -> None:
        """Renew our lease every third of its life; put back the jobs of consumers whose
        lease is gone every recover_s. Errors wait for the next turn: run() reconnects."""
        renew_every_s = self.config.lease_s / 3
        loop = asyncio.get_running_loop()
        renew_at = recover_at = loop.time()
        while not self._closing.is_set():
            now = loop.time()
            with contextlib.suppress(*REDIS_DOWN):
                if now >= renew_at:
                    renew_at = now + renew_every_s
                    await self._queue.renew()
                if now >= recover_at:
                    recover_at = now + self.config.recover_s
                    await self._recover()
            await _wait(self._closing, min(renew_at, recover_at) - loop.time())

    def _upkeep_ended(self, task: asyncio.Task[None]) -> None:
        """Without renewals our lease lapses and others take our jobs: end this worker."""
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            self.say(f"lease upkeep failed: {self._failure!r}; stopping")
            self.stop()

    async def _recover(self) -> None:
        for consumer, moved in (await self._queue.recover_lapsed()).items():
            self.say(f"put back {moved} job(s) of {consumer}, whose lease is gone")

    # ------------------------------------------------------------ helpers

    def _went_down(self, error: Exception) -> None:
        """Say it once per outage: a line per retry would flood the supervisor's log."""
        if not self._down:
            self._down = True
            self.say(
                f"Redis at {self.config.redis_url} is unreachable ({error}); "
                f"retrying every {self.config.retry_max_s:g}s at most until it answers"
            )

    def _came_up(self) -> None:
        url = self.config.redis_url
        if self._down:
            self.say(f"Redis at {url} answers again")
        elif not self._ready:
            self.say(f"connected to Redis at {url}; taking jobs from {self.config.key}")
        self._down = False

    async def _close(self) -> None:
        """Stop the upkeep, give up our lease (so a job left behind is recovered at once)."""
        if self._upkeep is not None:
            # Asked, not cancelled: on Python 3.11 redis-py can swallow a cancellation (its
            # send uses asyncio.wait_for), and the task would then go on for ever.
            self._closing.set()
            await asyncio.wait({self._upkeep}, timeout=self.config.poll_s + 5.0)
        if self._held is not None and self._finished:
            self.say("a finished job could not be acknowledged; it will run again")
        if not self._down and self._ready:
            with contextlib.suppress(*REDIS_DOWN, TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await self._queue.retire()
        await self._redis.aclose()

    def say(self, text: str) -> None:
        """A line for the supervisor's log (it captures our stderr), or the terminal."""
        print(f"queue_worker {self.config.consumer}: {text}", file=sys.stderr, flush=True)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Until the event is set or timeout_s has passed."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, timeout_s)):
            await event.wait()


def _on_stop_signals(worker: QueueWorker) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)


async def main() -> int:
    """The bot: one worker until drained or stopped; exit code 0."""
    config = QueueConfig.from_env(os.environ)
    async with Worker.connect() as sdk:
        worker = QueueWorker(config, sdk, connect_redis(config))
        sdk.on_control(worker.on_control)
        _on_stop_signals(worker)
        await worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
