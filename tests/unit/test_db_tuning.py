"""The db_tuning plugin's bookkeeping of what workers say, and the reasons it gives."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.errors import ProtocolError
from supervisor.plugins.base import WorkerRef
from supervisor.plugins.db_tuning.config import DbConfig
from supervisor.plugins.db_tuning.plugin import DbTuning
from supervisor.wire.db import CHECKS, DB_ACK, DB_ERROR, DB_STATS, DB_WANT

W = WorkerRef("heavy", 0, 4242, True)
KEY = ("heavy", 0, 4242)


@pytest.mark.parametrize(
    "message",
    [
        [DB_WANT, 1],
        [DB_ACK, -1, 0],
        [DB_ACK, 1],
        [DB_STATS, 1, 1, 1, 1, "fast", 1, 0],
        [DB_STATS, 1, 1, 1, 1, -2.0, 1, 0],
        [DB_ERROR, 3],
        [DB_ERROR, "x" * 501],
    ],
)
def test_bad_messages_are_refused(message: list[Any]) -> None:
    """Every frame is untrusted: a message that breaks its kind's shape is a ProtocolError."""
    with pytest.raises(ProtocolError):
        CHECKS[message[0]](message)


def test_stats_smooth_the_need_and_keep_the_latest_wait() -> None:
    """A worker's need follows its peaks, smoothed; its p95 wait and errors are the latest."""
    plugin = DbTuning(DbConfig())
    plugin.on_message(W, [DB_WANT, 0, 0])
    plugin.on_message(W, [DB_STATS, 2, 2, 6, 8, 120.0, 50, 0])
    assert plugin.pools[KEY].need == 8.0
    plugin.on_message(W, [DB_STATS, 4, 4, 0, 4, 10.0, 60, 1])
    pool = plugin.pools[KEY]
    assert (pool.need, pool.wait_p95_ms, pool.errors, pool.requests) == (6.0, 10.0, 1, 110)


def test_messages_of_unknown_workers_are_ignored() -> None:
    """Statistics or errors from a worker that never asked for a pool change nothing."""
    plugin = DbTuning(DbConfig())
    plugin.on_message(W, [DB_STATS, 2, 2, 6, 8, 120.0, 50, 0])
    plugin.on_message(W, [DB_ERROR, "boom"])
    plugin.on_message(W, [DB_ACK, 3, 0])
    assert plugin.pools == {}


@pytest.mark.parametrize(
    ("tuning", "previous", "size", "stats", "reason"),
    [
        (True, 0, 4, None, "heavy[0] asked for a pool; 3 workers share 20; pool 0 -> 4"),
        (
            True,
            4,
            6,
            [DB_STATS, 4, 4, 3, 7, 120.4, 10, 0],
            "bot heavy waited 120 ms p95 for a connection; pool 4 -> 6",
        ),
        (
            True,
            6,
            2,
            [DB_STATS, 6, 1, 0, 1, 0.0, 10, 0],
            "heavy[0] wants 1.0 at its peak; 3 workers share 20; pool 6 -> 2",
        ),
        (
            False,
            4,
            6,
            [DB_STATS, 4, 4, 3, 7, 120.0, 10, 0],
            "3 workers share a budget of 20; pool 4 -> 6",
        ),
    ],
)
def test_each_change_says_why(
    tuning: bool, previous: int, size: int, stats: list[Any] | None, reason: str
) -> None:
    """The reason names the bot and what moved the budget, and the sizes before and after."""
    plugin = DbTuning(DbConfig(tuning=tuning))
    plugin.budget = 20
    plugin.on_message(W, [DB_WANT, 0, 0])
    if stats is not None:
        plugin.on_message(W, stats)
    assert plugin._reason(KEY, previous, size, workers=3) == reason


def test_status_says_in_one_line_how_the_budget_stands() -> None:
    """`supervisor status` shows the budget and the last change, or why the server is away."""
    plugin = DbTuning(DbConfig())
    plugin.budget = 20
    assert plugin.status()["summary"] == "budget 20, granted 0, 0 open"
    plugin.server_state, plugin.server_error = "degraded", "connection refused"
    status = plugin.status()
    assert status["summary"] == "PostgreSQL unreachable: connection refused"
    assert status["degraded"] is True
