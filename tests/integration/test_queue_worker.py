"""bots/queue_worker.py against the real Redis: every job is done at least once, whether
workers are killed mid-job, scaled away, drained, stopped, or Redis goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from bots.jobs import consumer_id, consumers_key
from supervisor.errors import ProtocolError
from supervisor.wire import protocol
from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until
from tests.integration.redisqueue import FAST, Queue
from tests.services import PrivateRedis


def job_ids(n: int) -> list[str]:
    return [f"job-{i}" for i in range(n)]


def output_lines(sup: Supervisor, bot: str) -> list[str]:
    return [e["line"] for e in sup.events("worker_output") if e["bot"] == bot]


def exits(sup: Supervisor, bot: str, count: int = 1) -> list[dict[str, Any]]:
    """The bot's worker_exited events once there are count of them, else []."""
    found = [e for e in sup.events("worker_exited") if e["bot"] == bot]
    return found if len(found) >= count else []


def said(sup: Supervisor, bot: str, text: str) -> int:
    """How many lines the bot's workers wrote that contain text."""
    return sum(text in line for line in output_lines(sup, bot))


# ---------------------------------------------------------------- under the supervisor


def test_a_backlog_is_processed_by_three_workers(queue: Queue, sup: Supervisor) -> None:
    """300 jobs waiting before three workers start are each done, the lists end empty, and
    each worker reports queue_depth, inflight and jobs_done to the supervisor."""
    ids = job_ids(300)
    queue.push(*ids)
    sup.configure(queue.bot("q", 3, QUEUE_JOB_S="0.005"))
    sup.start()
    sup.wait_running("q", 3)
    wait_until(lambda: set(queue.done()) == set(ids), timeout_s=60, what="every job done")
    wait_until(queue.drained, what="the lists to empty")
    done = queue.done()

    def reported() -> bool:
        metrics = [w["metrics"] for w in sup.bot("q")["workers"]]
        idle = all(m.get("queue_depth") == 0 and m.get("inflight") == 0 for m in metrics)
        return idle and sum(m.get("jobs_done", 0) for m in metrics) == len(done)

    wait_until(reported, what="the workers' metrics")
    assert len(done) >= len(ids)
    assert sup.bot("q")["restarts"] == 0


def test_workers_killed_mid_job_lose_nothing(queue: Queue, sup: Supervisor) -> None:
    """Workers SIGKILLed while a job is in their processing list are restarted, put that job
    back, and in the end every job has been done and nothing is held."""
    ids = job_ids(400)
    queue.push(*ids)
    sup.configure(
        queue.bot("q", 3, 'backoff_initial_s = "10ms"\nmax_restarts = 100', QUEUE_JOB_S="0.03")
    )
    sup.start()
    sup.wait_running("q", 3)
    killed: list[str] = []
    for n in range(6):
        slot = n % 3
        pid = sup.wait_running("q", 3)[slot]
        killed += kill_while_holding(queue, "q", slot, pid)
        wait_until(lambda s=slot, p=pid: sup.pids("q").get(s, p) != p, what="a new worker")
    wait_until(lambda: set(queue.done()) == set(ids), timeout_s=60, what="every job done")
    wait_until(queue.drained, what="the lists to empty")
    assert set(killed) <= set(queue.done())
    assert sup.bot("q")["restarts"] >= 6
    assert said(sup, "q", "put back 1 job(s) left in") >= 1  # a restarted slot's own job


def kill_while_holding(queue: Queue, bot: str, slot: int, pid: int) -> list[str]:
    """SIGKILL the worker at a moment its processing list holds a job (checked while it is
    frozen, so the check is still true at the kill); returns what it held."""

    def frozen_holding() -> list[str]:
        os.kill(pid, signal.SIGSTOP)
        held = queue.held(bot, slot)
        if not held:
            os.kill(pid, signal.SIGCONT)
        return held

    held = wait_until(frozen_holding, what=f"worker {slot} to hold a job")
    os.kill(pid, signal.SIGKILL)
    return held


@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGKILL"])
def test_jobs_of_a_scaled_down_bot_are_recovered_through_the_lease(
    queue: Queue, sup: Supervisor, stop_signal: str
) -> None:
    """Workers that hold unfinishable jobs are scaled away and never come back; a worker of
    another bot on the same queue sees their leases gone and puts the jobs back, and does
    each exactly once. On SIGTERM the holders exit 0 without acknowledging."""
    # The supervisor drains first (for stop_timeout_s), then signals; after a SIGTERM the
    # holder needs a moment for its grace period and a clean exit.
    timeout = "3s" if stop_signal == "SIGTERM" else "500ms"
    stop = f'stop_signal = "{stop_signal}"\nstop_timeout_s = "{timeout}"'
    sup.configure(
        queue.bot("holders", 2, stop, QUEUE_JOB_S="3600", QUEUE_STOP_GRACE_S="0.2")
        + queue.bot("rescuers", 0, QUEUE_JOB_S="0.01")
    )
    sup.start()
    holders = sup.wait_running("holders", 2)
    queue.push("slow-0", "slow-1")
    wait_until(lambda: queue.held("holders", 0) and queue.held("holders", 1), what="both jobs held")
    sup.request("scale", bot="rescuers", count=1)
    sup.wait_running("rescuers", 1)

    sup.request("scale", bot="holders", count=0)
    gone = wait_until(lambda: exits(sup, "holders", 2), what="both holders to exit")
    assert sorted(e["pid"] for e in gone) == sorted(holders.values())
    wait_until(lambda: sorted(queue.done()) == ["slow-0", "slow-1"], what="both jobs done")
    wait_until(queue.drained, what="the lists to empty")
    assert sorted(queue.done()) == ["slow-0", "slow-1"]  # once each: never acked unfinished
    for slot in (0, 1):  # by the rescuer, or by the other holder while it stopped
        recovered = f"put back 1 job(s) of {consumer_id('holders', slot)}, whose lease is gone"
        assert said(sup, "rescuers", recovered) + said(sup, "holders", recovered) == 1
    holders_bot = sup.bot("holders")
    assert (holders_bot["desired"], holders_bot["restarts"]) == (0, 0)
    if stop_signal == "SIGTERM":
        assert [e["exit_code"] for e in gone] == [0, 0]
        assert said(sup, "holders", "left an unfinished job") == 2


def test_a_worker_drained_by_a_scale_down_finishes_its_job(queue: Queue, sup: Supervisor) -> None:
    """Where the supervisor drains the workers it scales away, a worker that holds a job
    finishes and acknowledges it, leaves the next one waiting and exits 0."""
    sup.configure(queue.bot("d", 1, 'stop_timeout_s = "30s"', QUEUE_JOB_S="2"))
    sup.start()
    pid = sup.wait_running("d", 1)[0]
    queue.push("first")
    wait_until(lambda: queue.held("d", 0) == ["first"], what="the job taken")
    sup.request("scale", bot="d", count=0)
    wait_until(lambda: said(sup, "d", "draining") or not pid_alive(pid), what="a drain or an exit")
    if not sup.events("worker_draining"):
        pytest.skip("this supervisor stops the workers it scales away without draining them")
    assert said(sup, "d", "draining: finishing the job in hand")
    queue.push("second")
    exited = wait_until(lambda: exits(sup, "d"), timeout_s=40, what="the worker to exit")
    assert [(e["pid"], e["exit_code"], e["expected"]) for e in exited] == [(pid, 0, True)]
    assert (queue.done(), queue.waiting(), queue.processing()) == (["first"], ["second"], {})


def test_a_worker_waits_out_redis_being_away(sup: Supervisor, tmp_path: Path) -> None:
    """With Redis not there the worker says so once, stays alive and not ready; when Redis
    comes it gets ready and works; when Redis dies and comes back it reconnects: never a
    restart."""
    server = PrivateRedis(tmp_path)  # not started yet: its port is free
    q = Queue(server.url, name="outage")
    # The SDK beats every 0.5 s: our clock below. (Not shorter: on a loaded machine a tight
    # heartbeat timeout would have the watchdog restart the worker, which is not the point.)
    beats = 'heartbeat_timeout_s = "2s"'
    sup.configure(q.bot("q", 1, beats, QUEUE_RETRY_MAX_S="0.2", QUEUE_JOB_S="0.01"))
    sup.start()
    unreachable = f"Redis at {q.url} is unreachable"
    wait_until(lambda: said(sup, "q", unreachable), what="the unreachable line")
    first = sup.bot("q")["workers"][0]
    pid = first["pid"]
    # Still the same worker, and not ready, four heartbeats (about two seconds) later.
    wait_until(
        lambda: sup.bot("q")["workers"][0]["messages"] >= first["messages"] + 4,
        what="four more heartbeats",
    )
    worker = sup.bot("q")["workers"][0]
    assert (worker["pid"], worker["state"], worker["ready"]) == (pid, "starting", False)
    assert sup.bot("q")["restarts"] == 0

    server.start()
    try:
        assert sup.wait_running("q", 1) == {0: pid}
        q.push("a", "b")
        wait_until(lambda: sorted(q.done()) == ["a", "b"], what="jobs done")

        server.stop()
        wait_until(lambda: said(sup, "q", unreachable) == 2, what="the line for the outage")
        server.start()  # empty: it keeps nothing on disk
        wait_until(lambda: said(sup, "q", "answers again"), what="the reconnection")
        q.push("c")
        wait_until(lambda: q.done() == ["c"], what="a job after the outage")
        assert sup.pids("q") == {0: pid}
        assert sup.bot("q")["restarts"] == 0
        assert said(sup, "q", unreachable) == 2  # once per outage, not once per retry
    finally:
        server.stop()
        q.redis.close()


# ---------------------------------------------------------------- outside the supervisor


class FakeSupervisor:
    """The supervisor's end of the worker socket, real protocol and all: the CLI cannot send
    DRAIN yet. It acknowledges heartbeats and the last batch, and records what it hears."""

    def __init__(self, directory: Path) -> None:
        self.address = f"ipc://{directory}/workers"
        self.token = os.urandom(protocol.TOKEN_BYTES)
        self.heard: list[list[Any]] = []
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.bind(self.address)
        self._peer: bytes | None = None

    def env(self, bot: str, slot: int) -> dict[str, str]:
        return {
            "SUPERVISOR_WORKERS": self.address,
            "SUPERVISOR_TOKEN": self.token.hex(),
            "SUPERVISOR_BOT": bot,
            "SUPERVISOR_WORKER": str(slot),
            "SUPERVISOR_PID": str(os.getpid()),  # the worker checks that its parent is us
        }

    def pump(self) -> list[list[Any]]:
        """Take in what has arrived; returns everything heard so far."""
        while self._sock.poll(0):
            self._peer, frame = self._sock.recv_multipart()
            try:
                token, messages = protocol.decode_batch(frame)
            except ProtocolError:
                continue
            assert token == self.token
            self.heard += messages
            acks = [
                [protocol.ACK, m[1]] for m in messages if m[0] in (protocol.HEARTBEAT, protocol.BYE)
            ]
            if acks:
                self._send(acks)
        return self.heard

    def drain(self) -> None:
        self._send([[protocol.DRAIN]])

    def _send(self, messages: list[list[Any]]) -> None:
        assert self._peer is not None
        self._sock.send_multipart([self._peer, protocol.encode_commands(messages)])

    def close(self) -> None:
        self._sock.close(linger=0)
        self._ctx.term()


def start_bot(directory: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """`python -m bots.queue_worker` as an operator would start it; stderr goes to a file."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    stderr = directory / "bot.stderr"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bots.queue_worker"],
            cwd=directory,  # under sup.dir: the harness's leak check covers it
            env=base | {"PYTHONPATH": str(REPO)} | env,
            stderr=err,
        )
    return proc, stderr


def wait_exit(proc: subprocess.Popen[bytes], pump: Callable[[], object] | None = None) -> int:
    def exited() -> bool:
        if pump is not None:
            pump()
        return proc.poll() is not None

    wait_until(exited, timeout_s=15, what="the bot to exit")
    return proc.returncode


def test_drain_finishes_the_job_in_hand_takes_no_more_and_exits_0(
    queue: Queue, sup: Supervisor
) -> None:
    """Sent DRAIN while it works on a job, the worker finishes and acknowledges that job,
    leaves the next one waiting, and exits 0."""
    fake = FakeSupervisor(sup.dir)
    env = fake.env("drainer", 0) | {"QUEUE_KEY": queue.key, "QUEUE_DONE_KEY": queue.done_key}
    env["QUEUE_REDIS_URL"] = queue.url
    proc, stderr = start_bot(sup.dir, env | FAST | {"QUEUE_JOB_S": "2"})
    try:
        wait_until(lambda: [protocol.READY] in fake.pump(), what="READY")
        queue.push("first")
        # Started, as the bot itself says (inflight 1 comes after it holds the job): Redis
        # shows the job moved a moment before BLMOVE's reply reaches the bot, and a drain in
        # that moment rightly gives the unstarted job back ("draining: idle"; CI saw it).
        wait_until(lambda: _heard_metric(fake.pump(), "inflight", 1), what="the job taken")
        assert queue.held("drainer", 0) == ["first"]
        fake.drain()
        wait_until(lambda: "draining" in stderr.read_text(), what="the drain heard")
        assert "draining: finishing the job in hand" in stderr.read_text()
        queue.push("second")
        assert wait_exit(proc, fake.pump) == 0
    finally:
        proc.kill()
        proc.wait()
        fake.close()
    assert (queue.done(), queue.waiting(), queue.processing()) == (["first"], ["second"], {})
    metrics = {m[1]: m[2] for m in fake.heard if m[0] == protocol.METRIC}
    assert metrics == {"inflight": 0, "queue_depth": 1, "jobs_done": 1}
    assert any(m[0] == protocol.BYE for m in fake.heard)  # it said goodbye through the SDK


def _heard_metric(heard: list[list[Any]], name: str, value: float) -> bool:
    return any(m[0] == protocol.METRIC and m[1] == name and m[2] == value for m in heard)


def test_standalone_sigterm_lets_the_job_in_hand_finish(queue: Queue, sup: Supervisor) -> None:
    """Without a supervisor the bot runs all the same; on SIGTERM it finishes the job it
    holds (within QUEUE_STOP_GRACE_S), acknowledges it and exits 0."""
    env = {"QUEUE_KEY": queue.key, "QUEUE_DONE_KEY": queue.done_key, "QUEUE_JOB_S": "2"}
    env["QUEUE_REDIS_URL"] = queue.url
    proc, stderr = start_bot(sup.dir, env | FAST | {"QUEUE_STOP_GRACE_S": "60"})
    try:
        queue.push("only")
        wait_until(lambda: queue.held("queue_worker", 0) == ["only"], what="the job taken")
        proc.send_signal(signal.SIGTERM)
        assert wait_exit(proc) == 0
    finally:
        proc.kill()
        proc.wait()
    assert "stopping: finishing the job in hand" in stderr.read_text()
    assert (queue.done(), queue.waiting(), queue.processing()) == (["only"], [], {})
    assert not queue.redis.exists(consumers_key(queue.key))  # a clean exit unregisters
