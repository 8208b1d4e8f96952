"""The monitor's HTTP endpoints, served inside the supervisor's loop.

    GET /                 the live dashboard (one HTML file, no CDN)
    GET /metrics          Prometheus exposition (prometheus_client's format)
    GET /api/status       what `supervisor status --json` prints
    GET /api/dashboard    status, recent series, the scaling timeline and alerts
    GET /healthz          200 while the supervisor runs (a liveness probe)
    GET /readyz           200 when every bot runs as desired, else 503 (a readiness probe)

A deliberately small HTTP/1.1 server on anyio streams: GET only, one
request per connection, headers capped at 16 KiB and 5 s. It listens on
loopback unless configured otherwise.
"""

from __future__ import annotations

import contextlib
import json
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import structlog
from anyio.abc import SocketAttribute

from supervisor.plugins.base import Host
from supervisor.plugins.monitor import prom

if TYPE_CHECKING:
    from supervisor.plugins.monitor.view import MonitorView

log = structlog.get_logger("supervisor.monitor")

_MAX_HEAD = 16 << 10
_READ_TIMEOUT_S = 5.0
_SERIES_POINTS = 120
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"


async def serve(
    monitor: MonitorView,
    host: Host,
    listen: str,
    *,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on listen ("host:port"); reports the bound address once listening."""
    address, _, port = listen.rpartition(":")
    listener = await anyio.create_tcp_listener(local_host=address, local_port=int(port))
    bound = listener.extra(SocketAttribute.local_address)
    task_status.started(f"{bound[0]}:{bound[1]}")
    app = App(monitor, host)
    async with listener:
        await listener.serve(app.handle)


class App:
    def __init__(self, monitor: MonitorView, host: Host) -> None:
        self.monitor = monitor
        self.host = host
        self.dashboard = (
            resources.files("supervisor.plugins.monitor").joinpath("dashboard.html").read_bytes()
        )

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(_READ_TIMEOUT_S):
                    head = await _read_head(stream)
                status, ctype, body = self.route(head)
            except (TimeoutError, ValueError, anyio.EndOfStream, anyio.BrokenResourceError):
                status, ctype, body = 400, "text/plain", b"bad request\n"
            except Exception:
                log.exception("monitor_request_failed")
                status, ctype, body = 503, "text/plain", b"internal error\n"
            header = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n"
            )
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stream.send(header.encode() + body)

    def route(self, head: bytes) -> tuple[int, str, bytes]:
        method, target = _request_line(head)
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n"
        path = target.split("?", 1)[0]
        if path == "/":
            return 200, "text/html; charset=utf-8", self.dashboard
        if path == "/metrics":
            return 200, prom.CONTENT_TYPE, prom.exposition(self.monitor, self.host)
        if path == "/api/status":
            return 200, "application/json", _json(self.host.status())
        if path == "/api/dashboard":
            return 200, "application/json", _json(self.dashboard_data())
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            bots = self.host.status()["bots"]
            ready = all(b["state"] == "running" for b in bots.values())
            return (200, "text/plain", b"ready\n") if ready else (503, "text/plain", b"not ready\n")
        return 404, "text/plain", b"not found\n"

    def dashboard_data(self) -> dict[str, Any]:
        now = time.monotonic()
        series = {f"{s.bot}:{s.slot}": s.tail(_SERIES_POINTS) for s in self.monitor.series.values()}
        return {
            "now": now,
            "status": self.host.status(),
            "series": series,
            "scaling": list(self.monitor.scaling)[-50:],
            "alerts": self.monitor.firing(now),
        }


async def _read_head(stream: anyio.abc.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive(4096)
        data += chunk
        if len(data) > _MAX_HEAD:
            raise ValueError("request head too large")
    return data


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    return parts[0], parts[1]


def _json(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()
