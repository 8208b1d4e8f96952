"""The SDK's pure parts: settings from the environment, the bounded buffer, standalone no-ops."""

from __future__ import annotations

import asyncio

from supervisor.sdk.link import Settings
from supervisor.sdk.worker import BATCH_MESSAGES, NullWorker, Worker, _Outbox
from supervisor.wire import protocol

ENV = {
    "SUPERVISOR_WORKERS": "ipc:///tmp/x/workers",
    "SUPERVISOR_TOKEN": "ab" * 16,
    "SUPERVISOR_BOT": "echo",
    "SUPERVISOR_WORKER": "3",
    "SUPERVISOR_PID": "42",
    "SUPERVISOR_HEARTBEAT_S": "0.5",
    "SUPERVISOR_STOP_SIGNAL": "2",
}


def test_settings_come_from_the_environment() -> None:
    """Everything the SDK needs is in SUPERVISOR_* variables."""
    s = Settings.from_env(ENV)
    assert s == Settings("ipc:///tmp/x/workers", bytes.fromhex("ab" * 16), "echo", 3, 42, 0.5, 2)


def test_without_a_supervisor_the_sdk_does_nothing(monkeypatch: object) -> None:
    """Missing or broken variables mean standalone: every call is a no-op."""
    assert Settings.from_env({}) is None
    assert Settings.from_env(ENV | {"SUPERVISOR_TOKEN": "zz"}) is None
    w = NullWorker()
    w.ready()
    w.gauge("x", 1)
    w.count("y")
    w.beat()
    assert w.flush() is True
    assert not w.draining


def test_connect_outside_a_supervisor_gives_the_null_worker() -> None:
    """Worker.connect works standalone, as an async and a sync context manager."""

    async def run() -> None:
        async with Worker.connect() as w:
            w.ready()
            w.count("jobs")

    asyncio.run(run())
    with Worker.connect_sync() as w:
        w.beat()


def test_outbox_sheds_oldest_metrics_and_reports_the_count() -> None:
    """When the buffer is full, the oldest metrics go and the next batch says how many."""
    box = _Outbox(max_metrics=3)
    box.add([protocol.READY])
    for i in range(5):
        box.add_metric([protocol.METRIC, "m", i, False], 24)
    batch = box.take()
    assert batch == [
        [protocol.DROPPED, 2],
        [protocol.READY],
        [protocol.METRIC, "m", 2, False],
        [protocol.METRIC, "m", 3, False],
        [protocol.METRIC, "m", 4, False],
    ]
    assert box.take() == []


def test_outbox_batches_by_count_and_never_sheds_other_messages() -> None:
    """A batch holds at most BATCH_MESSAGES; non-metric messages are never dropped."""
    box = _Outbox(max_metrics=10)
    for i in range(BATCH_MESSAGES + 10):
        box.add([protocol.HEARTBEAT, i])
    first, second = box.take(), box.take()
    assert len(first) == BATCH_MESSAGES
    assert [m[1] for m in first + second] == list(range(BATCH_MESSAGES + 10))


def test_outbox_splits_large_logs_by_bytes() -> None:
    """Big log lines are split across batches so no frame exceeds the limit."""
    box = _Outbox()
    for _ in range(40):
        box.add([protocol.LOG, "info", "x" * 16000], 16016)
    sizes = []
    while box:
        batch = box.take()
        sizes.append(len(protocol.encode_batch(b"t" * 16, batch)))
    assert len(sizes) > 1
    assert max(sizes) < protocol.MAX_WORKER_FRAME_BYTES


def test_outbox_keeps_order_across_kinds() -> None:
    """READY does not overtake the gauges before it, and BYE is always the last message."""
    box = _Outbox()
    box.add_metric([protocol.METRIC, "a", 1, False], 24)
    box.add([protocol.READY])
    for i in range(300):
        box.add_metric([protocol.METRIC, "b", i, False], 24)
    box.add([protocol.BYE, 1])
    sent = []
    while box:
        sent += box.take()
    assert sent[0] == [protocol.METRIC, "a", 1, False]
    assert sent[1] == [protocol.READY]
    assert sent[-1] == [protocol.BYE, 1]
    assert len(sent) == 303
