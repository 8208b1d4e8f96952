"""Dashboard actions behind tokens: sign in, then restart, stop, start, pin, unpin.

    [plugins.monitor]
    tokens = { ops = { role = "operate", token_file = "/etc/supervisor/ops.token" } }

    POST /api/login    {"token": "..."}  -> Set-Cookie sv_session (HttpOnly, SameSite=Strict)
                                            and {"name", "role", "csrf"}
    GET  /api/actions  -> {"enabled", "signed_in": {"name", "role", "csrf"} or null}
    POST /api/action   {"action", "bot", "worker"?, "count"?}, the session cookie and
                       X-CSRF-Token: the session's csrf (synchronizer token)

Without `tokens` the dashboard is read-only: every POST is refused. The
roles are the remote endpoint's (config/roles.py): restart/stop/start and
pin/unpin need `operate`. A cross-site page cannot act: the cookie is
SameSite=Strict, the CSRF token is readable only by the dashboard's own
origin, and a request whose Origin is not this host is refused. Every
attempt is a `dashboard_action` event naming the token's name.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from supervisor.config import roles
from supervisor.config.fields import BadValue, Table, choice, string
from supervisor.errors import CommandError
from supervisor.plugins.base import Host

log = structlog.get_logger("supervisor.monitor")

MAX_BODY = 4096
_SESSIONS = 256  # the oldest is forgotten beyond this
_SESSION_S = 12 * 3600.0
COOKIE = "sv_session"
# action -> the control command it runs
ACTIONS = {
    "restart_worker": "restart",
    "restart": "restart",
    "stop": "stop",
    "start": "start",
    "pin": "scale",
    "unpin": "scale",
}

Response = tuple[int, str, bytes, str]  # status, content type, body, extra header lines


@dataclass(frozen=True, slots=True)
class Token:
    name: str
    role: str
    secret: str


@dataclass(slots=True)
class _Session:
    name: str
    role: str
    csrf: str
    expires: float


def take_tokens(table: Table) -> tuple[Token, ...]:
    """`tokens = { NAME = { role, token_file } }`; each file's content is the token."""
    table.used.add("tokens")
    raw = table.raw.get("tokens", {})
    where = table.key_path("tokens")
    if not isinstance(raw, dict):
        table.problems.append(f"{where}: expected a table of NAME = {{ role, token_file }}")
        return ()
    tokens = []
    for name, item in raw.items():
        sub = Table(item, f"{where}.{name}", table.problems)
        role = sub.take("role", choice(*roles.ROLES), "")
        path = sub.take("token_file", string, "")
        sub.finish()
        if not role or not path:
            for key, value in (("role", role), ("token_file", path)):
                if not value and not sub.has(key):
                    table.problems.append(f"{sub.key_path(key)}: required")
            continue
        try:
            tokens.append(Token(name, role, _read_token(Path(path).expanduser())))
        except BadValue as e:
            table.problems.append(f"{sub.key_path('token_file')}: {e}")
    return tuple(tokens)


def _read_token(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise BadValue(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    if mode & 0o007:  # group may read: Kubernetes' fsGroup mounts Secrets 0440
        raise BadValue(f"{path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    if len(secret) < 16:
        raise BadValue(f"{path}: a token of at least 16 characters, please")
    return secret


class Actions:
    """The sessions of signed-in dashboard users, and what they may do."""

    def __init__(self, tokens: tuple[Token, ...], host: Host) -> None:
        self.tokens = tokens
        self.host = host
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def state(self, headers: dict[str, str]) -> Response:
        session = self._session(headers)
        signed_in = None
        if session is not None:
            signed_in = {"name": session.name, "role": session.role, "csrf": session.csrf}
        return _json(200, {"enabled": self.enabled, "signed_in": signed_in})

    def login(self, headers: dict[str, str], body: bytes) -> Response:
        if not self.enabled:
            return _json(403, {"error": "the dashboard is read-only: no tokens are configured"})
        if not _same_origin(headers):
            return _json(403, {"error": "cross-origin request refused"})
        given = _body(body).get("token")
        token = next(
            (t for t in self.tokens if isinstance(given, str) and _equal(t.secret, given)), None
        )
        if token is None:
            self.host.emit("dashboard_login_failed", level="warning")
            return _json(401, {"error": "unknown token"})
        session_id = secrets.token_urlsafe(32)
        session = _Session(token.name, token.role, secrets.token_urlsafe(32), 0.0)
        session.expires = time.monotonic() + _SESSION_S
        self._sessions[session_id] = session
        while len(self._sessions) > _SESSIONS:
            self._sessions.popitem(last=False)
        self.host.emit("dashboard_login", client=token.name, role=token.role)
        cookie = f"Set-Cookie: {COOKIE}={session_id}; HttpOnly; SameSite=Strict; Path=/\r\n"
        body_out = {"name": token.name, "role": token.role, "csrf": session.csrf}
        return (*_json(200, body_out)[:3], cookie)

    async def act(self, headers: dict[str, str], body: bytes) -> Response:
        if not self.enabled:
            return _json(403, {"error": "the dashboard is read-only: no tokens are configured"})
        session = self._session(headers)
        if session is None:
            return _json(401, {"error": "sign in with a token first"})
        request = _body(body)
        action = str(request.get("action", ""))
        fields: dict[str, Any] = {"client": session.name, "role": session.role}
        fields |= {"action": action, "bot": request.get("bot")}
        if not _same_origin(headers) or not _equal(session.csrf, headers.get("x-csrf-token", "")):
            self.host.emit("dashboard_action", level="warning", outcome="bad_csrf", **fields)
            return _json(403, {"error": "missing or wrong CSRF token"})
        try:
            cmd, args = command_for(request)
        except ValueError as e:
            return _json(400, {"error": str(e)})
        refusal = roles.refusal(session.role, cmd)
        if refusal is not None:
            self.host.emit("dashboard_action", level="warning", outcome="forbidden", **fields)
            return _json(403, {"error": refusal, "code": "forbidden"})
        self.host.emit("dashboard_action", outcome="accepted", **fields)
        try:
            result = await self.host.command(cmd, args)
        except CommandError as e:
            return _json(409, {"error": str(e), "code": e.code})
        return _json(200, {"ok": True, "result": result})

    def _session(self, headers: dict[str, str]) -> _Session | None:
        session_id = _cookies(headers.get("cookie", "")).get(COOKIE, "")
        session = self._sessions.get(session_id)
        if session is None or session.expires < time.monotonic():
            self._sessions.pop(session_id, None)
            return None
        return session


def command_for(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The control command (and its args) for a dashboard action; ValueError if malformed."""
    action, bot = request.get("action"), request.get("bot")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not isinstance(bot, str):
        raise ValueError("bot: expected a bot name")
    args: dict[str, Any] = {"bot": bot}
    if action == "restart_worker":
        worker = request.get("worker")
        if not isinstance(worker, int) or isinstance(worker, bool):
            raise ValueError("worker: expected a slot number")
        args["worker"] = worker
    elif action == "pin":
        count = request.get("count")
        if not isinstance(count, int) or isinstance(count, bool):
            raise ValueError("count: expected a whole number")
        args["count"] = count
    elif action == "unpin":
        args["count"] = "auto"
    return ACTIONS[str(action)], args


def parse_headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {k.strip().lower(): v.strip() for k, v in pairs}


def content_length(headers: dict[str, str]) -> int:
    """The body's length; ValueError if absent, malformed or over MAX_BODY."""
    length = int(headers.get("content-length", ""))
    if not 0 <= length <= MAX_BODY:
        raise ValueError("request body too large")
    return length


def _same_origin(headers: dict[str, str]) -> bool:
    """A browser sends Origin on a POST; it must name this host (a script elsewhere may not)."""
    origin = headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site form or fetch (those carry Origin)
    return origin.split("://", 1)[-1] == headers.get("host", "")


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().split("=", 1) for part in header.split(";") if "=" in part)
    return {k: v for k, v in pairs}


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _json(status: int, data: Any) -> Response:
    return status, "application/json", json.dumps(data, default=str).encode(), ""


def is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def warn_if_open(listen: str, tokens: tuple[Token, ...]) -> None:
    """Beyond loopback and without tokens, anyone who reaches the port sees the fleet."""
    if not tokens and not is_loopback(listen):
        log.warning(
            "monitor_unauthenticated", listen=listen,
            hint="the dashboard and /api/status are open to whoever reaches this address "
            "(read-only); set [plugins.monitor] tokens, or listen on 127.0.0.1",
        )  # fmt: skip


def script() -> bytes:
    return (Path(__file__).parent / "actions.js").read_bytes()
