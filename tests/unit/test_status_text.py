"""The human `status` table says what `status --json` says of one-shots and waiting bots: the
last run (when, how it ended, how long), the schedule and the next run, and why a bot waits."""

from __future__ import annotations

from typing import Any

from supervisor.cli.main import format_status


def _bot(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "state": state, "ready": 0, "desired": 1, "mode": "fixed", "restarts": 0,
        "uptime_s": 3.0, "workers": [], **extra,
    }  # fmt: skip


def test_one_shots_and_waiting_bots_say_their_runs_and_reasons() -> None:
    result = {
        "bots": {
            "migrate": _bot("failed", job={
                "outcome": "failed", "runs": 1, "last_run": "2026-12-03T12:00:00+00:00",
                "exit_code": 3, "signal": None, "duration_s": 0.42,
            }),
            "report": _bot("succeeded", job={
                "outcome": "succeeded", "runs": 4, "last_run": "2026-12-03T12:00:02+00:00",
                "exit_code": 0, "signal": None, "duration_s": 75.0, "schedule": "*/5 * * * *",
                "next_run": "2026-12-03T12:05:00+00:00", "skipped": 2,
            }),
            "killed": _bot("failed", job={
                "outcome": "failed", "runs": 1, "last_run": "2026-12-03T12:00:00+00:00",
                "exit_code": None, "signal": 9, "duration_s": 1.0,
            }),
            "web": _bot("waiting", waiting_for=["migrate"],
                        waiting_reason="migrate worker 0 ended with exit code 3"),
            "api": _bot("waiting", waiting_for=["redis://127.0.0.1:6379"]),
        }
    }  # fmt: skip
    text = format_status(result)
    assert "one-shot failed, last run " in text
    assert ": exit 3 after 0.4s" in text
    assert ": exit 0 after 1m15s" in text
    assert "schedule */5 * * * *, next " in text
    assert "2 tick(s) skipped" in text
    assert ": signal 9 after 1.0s" in text
    assert "waiting: migrate worker 0 ended with exit code 3" in text
    assert "waiting for redis://127.0.0.1:6379 to be ready" in text
