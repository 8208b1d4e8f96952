"""Control-request admission: one peer's flood is refused and counted; the others are served."""

from __future__ import annotations

from typing import Any

import msgpack

from supervisor.daemon import status_fit
from supervisor.policy.admission import Admission, Limits


def test_a_flooding_peer_is_rate_limited_and_the_others_still_get_in() -> None:
    gate = Admission(Limits(rate_per_s=10, burst=5, per_peer_inflight=100, total_inflight=1000))
    results = []
    for _ in range(1000):  # the flood, all at one instant
        reason = gate.admit(b"flood", 0.0)
        results.append(reason)
        if not reason:
            gate.done(b"flood")
    assert results.count("") == 5
    assert gate.dropped == {"rate_limited": 995}
    assert gate.admit(b"quiet", 0.0) == ""  # a new peer has its own bucket
    gate.done(b"quiet")
    assert gate.admit(b"flood", 0.5) == ""  # 0.5 s at 10/s: five more tokens
    gate.done(b"flood")


def test_in_flight_requests_are_bounded_per_peer_and_in_total() -> None:
    gate = Admission(Limits(rate_per_s=1e9, burst=1e9, per_peer_inflight=2, total_inflight=3))
    assert [gate.admit(b"a", 0.0) for _ in range(3)] == ["", "", "peer_busy"]
    assert gate.admit(b"b", 0.0) == ""
    assert gate.admit(b"c", 0.0) == "overloaded"
    gate.done(b"a")
    assert gate.admit(b"c", 0.0) == ""
    assert gate.stats()["dropped"] == {"peer_busy": 1, "overloaded": 1}


def test_a_clock_that_goes_back_refills_nothing() -> None:
    gate = Admission(Limits(rate_per_s=1, burst=1))
    assert gate.admit(b"a", 100.0) == ""
    gate.done(b"a")
    assert gate.admit(b"a", 50.0) == "rate_limited"


def test_many_identities_do_not_grow_the_table_without_bound() -> None:
    gate = Admission(Limits(rate_per_s=1, burst=1, max_peers=100))
    for i in range(10_000):
        if not gate.admit(i.to_bytes(4, "big"), 0.0):
            gate.done(i.to_bytes(4, "big"))
    assert gate.peers <= 100


def _status(bots: int, workers: int) -> dict[str, Any]:
    worker = {
        "slot": 0,
        "pid": 1234,
        "state": "running",
        "metrics": {f"m{i}": i for i in range(20)},
    }
    return {
        "supervisor": {"pid": 1},
        "bots": {
            f"b{b}": {"running": workers, "workers": [dict(worker, slot=i) for i in range(workers)]}
            for b in range(bots)
        },
    }


def _encode(x: Any) -> bytes:
    return msgpack.packb(x)  # type: ignore[no-any-return]


def test_a_status_that_fits_is_left_alone() -> None:
    status = _status(2, 10)
    assert status_fit.fit(status, _encode, budget=1 << 20) is status


def test_a_status_over_budget_loses_metrics_first_then_tails_with_a_note() -> None:
    status = _status(3, 2000)
    size = len(_encode(status))
    no_metrics = status_fit.fit(status, _encode, budget=size - 1)
    assert len(_encode(no_metrics)) <= size - 1
    assert "metrics" not in no_metrics["bots"]["b0"]["workers"][0]
    assert len(no_metrics["bots"]["b0"]["workers"]) == 2000
    assert "per-worker metrics left out" in no_metrics["trimmed"]

    small = status_fit.fit(status, _encode, budget=20_000)
    assert len(_encode(small)) <= 20_000
    for bot in small["bots"].values():
        assert bot["workers_total"] == 2000 == bot["running"]
        assert 0 < bot["workers_shown"] == len(bot["workers"]) < 2000
    assert "cut short" in small["trimmed"]
    assert len(status["bots"]["b0"]["workers"]) == 2000  # the original is untouched
    assert "metrics" in status["bots"]["b0"]["workers"][0]
