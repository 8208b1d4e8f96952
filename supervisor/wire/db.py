"""The db_tuning plugin's messages, worker -> supervisor (plugin kinds 34-37).

    +------+----------+----------------------------------------------------------+
    | kind | name     | fields                                                   |
    +------+----------+----------------------------------------------------------+
    |   34 | DB_WANT  | held, generation: uint  (wants a pool; what it holds now, |
    |      |          | and the last grant it applied: 0, 0 the first time)      |
    |   35 | DB_ACK   | generation: uint, open: uint  (grant applied; open conns) |
    |   36 | DB_STATS | size, in_use, waiting, peak: uint, wait_p95_ms: number,  |
    |      |          | requests: uint, errors: uint (since the pool opened)     |
    |   37 | DB_ERROR | text: str  (the pool's latest connection error)          |
    +------+----------+----------------------------------------------------------+

Supervisor -> worker, a CONFIG message: {"db_pool": {"generation": uint,
"size": uint (connections allowed now), "pid": uint (the process it is for),
"dsn": str, and the pool settings of db_config.PoolSettings.wire()}}. A
worker ignores a generation older than the one it applied, and a grant for
another pid (the process before it in its slot). {"db_pool": {"announce":
true}} asks every worker with a pool to say DB_WANT again with what it holds
(a plugin that was restarted, e.g. by a reload, learns the fleet anew).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.errors import ProtocolError

DB_WANT, DB_ACK, DB_STATS, DB_ERROR = 34, 35, 36, 37
CONFIG_KEY = "db_pool"
MAX_ERROR_TEXT = 500


def _uint(value: object) -> bool:
    return type(value) is int and value >= 0


def _check(ok: Callable[[list[Any]], bool], shape: str) -> Callable[[list[Any]], None]:
    def check(m: list[Any]) -> None:
        if not ok(m):
            raise ProtocolError(f"{shape} expected")

    return check


CHECKS: dict[int, Callable[[list[Any]], None]] = {
    DB_WANT: _check(
        lambda m: len(m) == 3 and _uint(m[1]) and _uint(m[2]), "DB_WANT [34, held, generation]"
    ),
    DB_ACK: _check(
        lambda m: len(m) == 3 and _uint(m[1]) and _uint(m[2]), "DB_ACK [35, generation, open]"
    ),
    DB_STATS: _check(
        lambda m: (
            len(m) == 8
            and all(_uint(v) for v in (m[1], m[2], m[3], m[4], m[6], m[7]))
            and type(m[5]) in (int, float)
            and m[5] >= 0
        ),
        "DB_STATS [36, size, in_use, waiting, peak, wait_p95_ms, requests, errors]",
    ),
    DB_ERROR: _check(
        lambda m: len(m) == 2 and type(m[1]) is str and len(m[1]) <= MAX_ERROR_TEXT,
        "DB_ERROR [37, text]",
    ),
}
