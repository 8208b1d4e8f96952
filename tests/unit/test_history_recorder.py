"""What the monitor records: `[plugins.monitor.history]` settings and the points of a status."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.config.fields import Table
from supervisor.history.store import BOT, FLEET
from supervisor.plugins.monitor.plugin import Monitor


def configure(raw: dict[str, Any]) -> tuple[Any, list[str]]:
    problems: list[str] = []
    config = Monitor.configure(Table(raw, "plugins.monitor", problems))
    return config, problems


def test_history_settings_default_and_parse() -> None:
    config, problems = configure({})
    assert problems == []
    assert config.history.enabled
    assert config.history.retention.raw_s == 3600
    config, problems = configure(
        {"history": {"enabled": False, "raw_s": "30m", "minute_s": "2h", "max_mb": 64}}
    )
    assert problems == []
    assert not config.history.enabled
    assert (config.history.retention.raw_s, config.history.retention.max_mb) == (1800, 64)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"raw_s": "soon"}, "plugins.monitor.history.raw_s: "),
        ({"enabled": "yes"}, "plugins.monitor.history.enabled: expected true or false"),
        ({"max_mb": 0}, "plugins.monitor.history.max_mb: "),
        ({"raw_s": "2h", "minute_s": "1h"}, "plugins.monitor.history: needs raw_s <= minute_s"),
        ({"raw": "1h"}, 'plugins.monitor.history.raw: unknown key; did you mean "raw_s"?'),
    ],
)
def test_bad_history_settings_name_their_key(table: dict[str, Any], problem: str) -> None:
    _, problems = configure({"history": table})
    assert len(problems) == 1
    assert problems[0].startswith(problem), problems


def test_points_cover_workers_bots_the_fleet_and_plugins() -> None:
    from supervisor.plugins.monitor.recorder import points

    status = {
        "supervisor": {"pid": 1, "loop_lag_s": 0.01, "workers": {"messages": 5, "rejected": {"bad": 2}}},
        "bots": {
            "web": {
                "desired": 2, "running": 2, "ready": 1, "restarts": 3,
                "scale": {"min": 1, "max": 2, "metrics": [{"metric": "cpu", "value": 90.0, "target": 50}]},
                "workers": [
                    {"slot": 0, "pid": 10, "ready": True, "restarts": 1, "messages": 9, "dropped": 4,
                     "metrics": {"queue": 7, "label": "x"}},
                    {"slot": 1, "pid": None, "ready": False, "restarts": 0, "metrics": {}},
                ],
            }
        },
        "plugins": {
            "cache_warmer": {"hit_rate": {"web": 0.5}, "reads": {"web": {"hits": 1, "misses": 1}},
                             "warms": {"ok": 3, "skipped": {"cold": 1}}, "keys_tracked": 4},
            "db_tuning": {"budget": 10, "granted": 10, "fleet_connections": 8,
                          "bots": {"web": {"waiting": 2, "wait_p95_ms": 40.0, "pool_errors": 0}}},
        },
    }  # fmt: skip
    got = dict(
        points(
            status,
            {10: {"cpu_percent": 99.0, "rss_mb": 50.0}, 1: {"cpu_percent": 3.0}},
            {"load1": 1.5},
        )
    )
    assert got[("web", 0, "cpu_percent")] == 99.0
    assert got[("web", 0, "dropped")] == 4.0
    assert got[("web", 0, "m.queue")] == 7.0
    assert ("web", 0, "m.label") not in got  # not a number
    assert not any(k[1] == 1 for k in got if k[0] == "web")  # no pid: nothing sampled
    assert got[("web", BOT, "scale.cpu")] == 90.0
    assert got[("web", BOT, "scale.cpu.target")] == 50.0
    assert got[("web", BOT, "scale.max")] == 2.0
    assert got[("web", BOT, "cache.hit_rate")] == 0.5
    assert got[("web", BOT, "db.waiting")] == 2.0
    assert got[(FLEET, BOT, "cpu_percent")] == 3.0
    assert got[(FLEET, BOT, "ipc.rejected")] == 2.0
    assert got[(FLEET, BOT, "db.budget")] == 10.0
    assert got[(FLEET, BOT, "cache.warms.ok")] == 3.0
    assert got[(FLEET, BOT, "host.load1")] == 1.5
