"""The monitor's HTTP port under a crowd of idle peers: at most `max_connections` are open at
once; one beyond gets a 503 and is closed, counted in status and /metrics; once the crowd
leaves, requests are answered again."""

from __future__ import annotations

import contextlib
import socket

from tests.integration.harness import Supervisor, wait_until
from tests.integration.test_monitor import fetch, url

CAP = 8
CONFIG = (
    f'[bots.idle]\ncommand = ["sleep", "1000"]\nworkers = 1\n\n'
    f'[plugins.monitor]\nlisten = "127.0.0.1:0"\ninterval_s = "250ms"\nmax_connections = {CAP}\n'
)


def _connections(sup: Supervisor) -> dict[str, int]:
    found: dict[str, int] = sup.status()["plugins"]["monitor"]["connections"]
    return found


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_connections_beyond_the_cap_are_refused_and_counted(sup: Supervisor) -> None:
    """CAP idle peers hold every place; the next connection is answered 503 and closed at
    once (not after the 5 s read timeout); the refusal is counted; after the idle peers
    leave, a plain GET is served again."""
    sup.configure(CONFIG)
    sup.start()
    host, port = url(sup, "").removeprefix("http://").rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(CAP)]
    try:
        wait_until(lambda: _connections(sup)["open"] == CAP, what="the idle peers held open")
        extra = socket.create_connection((host, int(port)), timeout=10)
        with contextlib.closing(extra):
            answer = _read_all(extra)  # the server closes it: recv returns b"" at the end
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"too many connections" in answer
        counted = _connections(sup)
        assert (counted["refused"], counted["open"], counted["max"]) == (1, CAP, CAP)
        metrics = fetch_after_leaving(sup, idle)
        assert "supervisor_monitor_connections_refused_total 1.0" in metrics
    finally:
        for s in idle:
            s.close()


def fetch_after_leaving(sup: Supervisor, idle: list[socket.socket]) -> str:
    """Close the idle peers, wait for their places to free, then GET /metrics."""
    for s in idle:
        s.close()
    wait_until(lambda: _connections(sup)["open"] == 0, what="the idle peers' places freed")
    return fetch(sup, "/metrics").decode()
