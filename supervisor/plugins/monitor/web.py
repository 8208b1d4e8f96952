"""The monitor's HTTP endpoints, served inside the supervisor's loop.

    GET /                 the live dashboard (one HTML file, no CDN)
    GET /metrics          Prometheus exposition (prometheus_client's format)
    GET /api/status       what `supervisor status --json` prints
    GET /api/dashboard    status, recent series, the scaling timeline and alerts
    GET /healthz          200 while the supervisor runs (a liveness probe)
    GET /readyz           200 when every bot runs as desired, else 503 (a readiness probe)
    GET /actions.js, GET /api/actions, POST /api/login, POST /api/action
                          dashboard actions, only with tokens configured (actions.py)
    GET /history, /api/history, /api/findings   the on-disk history (history_api.py)

A deliberately small HTTP/1.1 server on anyio streams: GET (and the actions' POST), one
request per connection, headers capped at 16 KiB and 5 s, the answer's send at 5 s. At most
`max_connections` are open at once: one beyond gets a short 503 (within 1 s) and is closed, and
is counted (`Connections.refused`, in status and /metrics), so a flood of idle peers costs
the loop a bounded number of tasks and descriptors. It listens on loopback unless configured
otherwise.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
import structlog
from anyio.abc import SocketAttribute

from supervisor.plugins.base import Host
from supervisor.plugins.monitor import actions, history_api, prom

if TYPE_CHECKING:
    from supervisor.plugins.monitor.view import MonitorView

log = structlog.get_logger("supervisor.monitor")

_MAX_HEAD = 16 << 10
_READ_TIMEOUT_S = 5.0
_SEND_TIMEOUT_S = 5.0  # a peer that does not read its answer is dropped
_REFUSE_TIMEOUT_S = 1.0  # the 503 to a connection beyond the cap
_REFUSED = (
    b"HTTP/1.1 503 Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
    b"Connection: close\r\n\r\ntoo many connections\n"
)
_SERIES_POINTS = 120
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS.update({401: "Unauthorized", 403: "Forbidden", 409: "Conflict", 503: "Unavailable"})


async def serve(
    monitor: MonitorView,
    host: Host,
    listen: str,
    tokens: tuple[actions.Token, ...] = (),
    *,
    connections: Connections | None = None,
    task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on listen ("host:port"); reports the bound address once listening."""
    address, _, port = listen.rpartition(":")
    listener = await anyio.create_tcp_listener(local_host=address, local_port=int(port))
    bound = listener.extra(SocketAttribute.local_address)
    task_status.started(f"{bound[0]}:{bound[1]}")
    app = App(monitor, host)
    app.actions = actions.Actions(tokens, host)
    gate = connections or Connections()
    async with listener:
        await listener.serve(partial(gate.handle, app.handle))


@dataclass
class Connections:
    """The cap on connections open at once, and what it counted."""

    limit: int = 256
    open: int = 0
    refused: int = 0
    accepted: int = 0

    async def handle(
        self, serve: Callable[[anyio.abc.SocketStream], Awaitable[None]],
        stream: anyio.abc.SocketStream,
    ) -> None:  # fmt: skip
        if self.open >= self.limit:
            self.refused += 1
            if self.refused & (self.refused - 1) == 0:  # 1, 2, 4, ...: a flood is not a log
                log.warning("monitor_connection_refused", open=self.open, refused=self.refused)
            async with stream:
                with anyio.move_on_after(_REFUSE_TIMEOUT_S), contextlib.suppress(*_GONE):
                    await stream.send(_REFUSED)
            return
        self.open += 1
        self.accepted += 1
        try:
            await serve(stream)
        finally:
            self.open -= 1

    def status(self) -> dict[str, int]:
        return {"open": self.open, "max": self.limit, "accepted": self.accepted,
                "refused": self.refused}  # fmt: skip


_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class App:
    def __init__(self, monitor: MonitorView, host: Host) -> None:
        self.monitor = monitor
        self.host = host
        self.dashboard = (
            resources.files("supervisor.plugins.monitor").joinpath("dashboard.html").read_bytes()
        )
        self.actions = actions.Actions((), host)  # read-only unless serve() is given tokens

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            extra = ""  # more header lines (a session cookie)
            try:
                with anyio.fail_after(_READ_TIMEOUT_S):
                    head, rest = await _read_head(stream)
                    method, target = _request_line(head)
                    if method == "POST":
                        status, ctype, body, extra = await self.post(head, rest, stream)
                if method == "POST":
                    pass  # answered above, inside the read timeout (it reads a body)
                elif method == "GET" and history_api.wants(target):  # history_api.py
                    monitor = cast("history_api.Source", self.monitor)
                    status, ctype, body = await history_api.respond(monitor, target)
                else:
                    status, ctype, body = self.route(head)
            except (TimeoutError, ValueError, anyio.EndOfStream, anyio.BrokenResourceError):
                status, ctype, body = 400, "text/plain", b"bad request\n"
            except Exception:
                log.exception("monitor_request_failed")
                status, ctype, body = 503, "text/plain", b"internal error\n"
            header = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                f"Connection: close\r\n{extra}\r\n"
            )
            with anyio.move_on_after(_SEND_TIMEOUT_S), contextlib.suppress(*_GONE):
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
        if path == "/actions.js":
            return 200, "text/javascript; charset=utf-8", actions.script()
        if path == "/api/actions":
            return self.actions.state(actions.parse_headers(head))[:3]
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            bots = self.host.status()["bots"]
            ready = all(b["state"] == "running" for b in bots.values())
            return (200, "text/plain", b"ready\n") if ready else (503, "text/plain", b"not ready\n")
        return 404, "text/plain", b"not found\n"

    async def post(
        self, head: bytes, rest: bytes, stream: anyio.abc.SocketStream
    ) -> actions.Response:
        """POST /api/login and /api/action: read the (small) body, let actions.py decide."""
        headers = actions.parse_headers(head)
        length = actions.content_length(headers)
        body = rest
        while len(body) < length:
            body += await stream.receive(4096)
        body = body[:length]
        path = _request_line(head)[1].split("?", 1)[0]
        if path == "/api/login":
            return self.actions.login(headers, body)
        if path == "/api/action":
            return await self.actions.act(headers, body)
        return 404, "text/plain", b"not found\n", ""

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


async def _read_head(stream: anyio.abc.SocketStream) -> tuple[bytes, bytes]:
    """The request head, and whatever of the body came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive(4096)
        data += chunk
        if len(data) > _MAX_HEAD:
            raise ValueError("request head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    return parts[0], parts[1]


def _json(data: Any) -> bytes:
    return json.dumps(data, default=str).encode()
