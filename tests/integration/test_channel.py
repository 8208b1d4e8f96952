"""The worker channel with real SDK workers: batches, readiness, heartbeats, forged frames."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import msgpack
import zmq

from supervisor.wire import protocol
from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until


def sdk_bot(name: str, mode: str, workers: int = 1, extra: str = "", env: str = "") -> str:
    return f"""
[bots.{name}]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
workers = {workers}
{extra}
env = {{ SDK_MODE = "{mode}"{env} }}
"""


def test_every_metric_of_twenty_workers_is_counted(sup: Supervisor) -> None:
    """20 SDK workers each send 50,000 counter increments in batches; the supervisor counts
    every one of them and nothing is dropped."""
    sup.configure(sdk_bot("m", "metrics", workers=20, env=', SDK_COUNT = "50000"'))
    sup.start()

    def all_in() -> bool:
        workers = sup.bot("m")["workers"]
        return len(workers) == 20 and all(w["metrics"].get("done") == 1 for w in workers)

    wait_until(all_in, timeout_s=60, what="all metrics")
    bot = sup.bot("m")
    assert [w["metrics"]["sent"] for w in bot["workers"]] == [50_000] * 20
    assert [w["dropped"] for w in bot["workers"]] == [0] * 20
    assert all(w["messages"] >= 50_002 for w in bot["workers"])  # hello, ready, metrics, ...
    stats = sup.status()["supervisor"]["workers"]
    assert stats["messages"] >= 20 * 50_002
    assert stats["rejected"] == {}


def test_readiness_heartbeats_and_metrics_show_in_status(sup: Supervisor) -> None:
    """An SDK worker is `starting` until it says READY; then status shows its heartbeat age,
    message count and latest metrics; worker_ready is an event."""
    sup.configure(
        sdk_bot("a", "idle", extra='heartbeat_timeout_s = "2s"')
        + f"""
[bots.s]
module = "tests.bots.sdk:sync_main"
cwd = "{REPO}"
heartbeat_timeout_s = "2s"
"""
    )
    sup.start()
    sup.wait_running("a", 1)
    sup.wait_running("s", 1)
    wait_until(lambda: sup.bot("s")["workers"][0]["metrics"].get("ticks", 0) > 5, what="ticks")
    for name in ("a", "s"):
        w = sup.bot(name)["workers"][0]
        assert (w["state"], w["ready"], w["sdk"]) == ("running", True, True)
        assert w["heartbeat_age_s"] is not None
        assert w["heartbeat_age_s"] < 2
        assert w["messages"] >= 3
    assert {e["bot"] for e in sup.events("worker_ready")} == {"a", "s"}


def test_readiness_sdk_waits_for_ready_even_from_a_slow_starter(sup: Supervisor) -> None:
    """With readiness = "sdk" a worker that takes long to say hello is not counted ready by
    ready_after_s; it becomes ready once, when it says READY."""
    sup.configure(
        sdk_bot(
            "slow",
            "idle",
            extra='readiness = "sdk"\nready_after_s = "100ms"',
            env=', SDK_HELLO_AFTER_S = "1"',
        )
    )
    sup.start()
    sup.wait_running("slow", 1)
    ready = sup.events("worker_ready")
    assert len(ready) == 1
    assert ready[0]["after_s"] >= 1.0


def test_a_bot_whose_loop_blocks_is_restarted_by_the_watchdog(sup: Supervisor) -> None:
    """When the event loop blocks, heartbeats stop; after heartbeat_timeout_s the worker is
    killed and restarted, and the reason is logged and counted."""
    sup.configure(
        sdk_bot(
            "stuck",
            "block",
            extra='heartbeat_timeout_s = "1s"\nstop_timeout_s = "200ms"\nbackoff_initial_s = "50ms"',
        )
    )
    sup.start()
    first = sup.wait_running("stuck", 1)[0]
    event = wait_until(
        lambda: sup.events("worker_unresponsive"), timeout_s=15, what="the watchdog"
    )[0]
    assert event["pid"] == first
    assert event["reason"].startswith("no heartbeat for ")
    wait_until(lambda: not pid_alive(first), what="the stuck worker to die")
    wait_until(lambda: sup.pids("stuck").get(0, first) != first, what="a new worker")
    w = sup.bot("stuck")["workers"][0]
    assert w["unresponsive"] >= 1
    assert w["restarts"] >= 1
    exited = next(e for e in sup.events("worker_exited") if e["pid"] == first)
    assert exited["reason"].startswith("no heartbeat for ")
    assert exited["expected"] is False


def test_a_worker_that_never_gets_ready_is_restarted(sup: Supervisor) -> None:
    """An SDK worker that says hello but never READY is killed after ready_timeout_s."""
    sup.configure(
        sdk_bot("lazy", "never_ready", extra='ready_timeout_s = "1s"\nstop_timeout_s = "200ms"')
    )
    sup.start()
    event = wait_until(
        lambda: sup.events("worker_unresponsive"), timeout_s=15, what="the watchdog"
    )[0]
    assert event["reason"] == "not ready 1s after start"
    wait_until(lambda: sup.bot("lazy")["restarts"] >= 1, what="a restart")
    assert sup.bot("lazy")["workers"][0]["state"] in ("starting", "backoff")


def test_forged_frames_are_counted_and_dropped(sup: Supervisor) -> None:
    """Garbage, a wrong token, wrong types and an oversized frame are counted by reason while
    real workers keep working and lose nothing."""
    sup.configure(sdk_bot("m", "metrics", workers=2, env=', SDK_COUNT = "20000"'))
    sup.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(f"ipc://{sup.run_dir}/workers")
    forged = [
        b"\x92\x01 garbage",
        protocol.encode_batch(b"x" * 16, [[protocol.READY]]),
        msgpack.packb([protocol.VERSION, b"x" * 16, [[protocol.METRIC, "m", "NaN?", False]]]),
        b"\x00" * (protocol.MAX_WORKER_FRAME_BYTES + 1),
    ]
    for _ in range(50):
        for frame in forged:
            sock.send(frame)
    sock.close()
    ctx.term()
    expected = {"undecodable": 100, "bad_token": 50, "too_large": 50}
    wait_until(
        lambda: sup.status()["supervisor"]["workers"]["rejected"] == expected,
        what="all forged frames to be counted",
    )

    def done() -> bool:
        return all(w["metrics"].get("done") == 1 for w in sup.bot("m")["workers"])

    wait_until(done, timeout_s=30, what="the real workers' metrics")
    assert [w["metrics"]["sent"] for w in sup.bot("m")["workers"]] == [20_000, 20_000]


def test_sdk_workers_exit_when_the_supervisor_dies(sup: Supervisor) -> None:
    """With the supervisor killed -9 and its guardian frozen, SDK workers notice their parent
    is gone and stop themselves."""
    sup.configure(
        sdk_bot("orphans", "idle", workers=3, extra='spawn = "exec"\nheartbeat_timeout_s = "1s"')
    )
    sup.start()
    pids = list(sup.wait_running("orphans", 3).values())
    guardian = sup.status()["supervisor"]["helpers"]["guardian"]
    os.kill(guardian, signal.SIGSTOP)
    try:
        sup.kill9()
        wait_until(
            lambda: not any(pid_alive(p) for p in pids), timeout_s=10, what="the workers to exit"
        )
    finally:
        os.kill(guardian, signal.SIGKILL)


def test_events_command_prints_fleet_events_live(sup: Supervisor) -> None:
    """`supervisor events --json` prints events as they happen, one JSON object per line."""
    sup.configure('[bots.s]\ncommand = ["sleep", "1000"]\nready_after_s = 0\n')
    sup.start()
    sup.wait_running("s", 1)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "events", "--json", "-c", str(sup.config_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()

    def keep_scaling() -> None:  # until the subscriber has connected and seen one
        count = 2
        while not stop.wait(0.1):
            sup.request("scale", bot="s", count=count)
            count = 5 - count

    scaler = threading.Thread(target=keep_scaling, daemon=True)
    killer = threading.Timer(30, watcher.kill)  # bounds the blocking reads below
    scaler.start()
    killer.start()
    try:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            event = json.loads(line)
            if event["event"] == "bot_scaled":
                break
        else:
            raise AssertionError("the event stream ended without bot_scaled")
        assert event["bot"] == "s"
        assert event["desired"] in (2, 3)
        assert isinstance(event["ts"], float)
    finally:
        stop.set()
        killer.cancel()
        watcher.terminate()
        watcher.wait()
        scaler.join()
