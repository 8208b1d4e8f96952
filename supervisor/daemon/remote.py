"""The remote control endpoint: CURVE-authenticated clients, each with a role.

    request -> ZAP (wire/curve.py) admitted the key and named the client
            -> the client's token bucket (`rate_limited`; junk counts too)
            -> decode (bad frames counted, answered `bad_request`)
            -> its role (`forbidden`, naming the role needed; config/roles.py)
            -> an audit event `remote_command` {client, role, cmd, bot, count, outcome}
            -> the same `Commands` as the local socket

The local ipc socket is untouched by all this: it is another socket with its
own task. Replies are sent without waiting; a client that does not read
loses them. Every wait here is on the loop (no thread), and the ZAP handler
is a dict lookup.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

import anyio.abc
import structlog

from supervisor.config import roles
from supervisor.config.remote import RemoteSettings
from supervisor.daemon.commands import Commands
from supervisor.daemon.events import Events
from supervisor.errors import CommandError, ProtocolError
from supervisor.policy.ratelimit import TokenBucket
from supervisor.wire import protocol
from supervisor.wire.curve import RemoteServer

if TYPE_CHECKING:
    import zmq.asyncio

log = structlog.get_logger("supervisor.remote")

_AUDITED_ARGS = ("bot", "count", "worker", "rolling")


class Host(Protocol):
    """What the remote endpoint needs of the owner."""

    events: Events

    def replying(self) -> AbstractContextManager[None]: ...


class RemoteControl:
    def __init__(self, settings: RemoteSettings, commands: Commands, host: Host) -> None:
        self.settings = settings
        self._commands = commands
        self._host = host
        self._roles = {c.name: c.role for c in settings.clients.values()}
        self._buckets: dict[str, TokenBucket] = {}
        self._limited: set[str] = set()  # clients in a streak of refusals (one event per streak)
        self.counts = {"requests": 0, "bad_frames": 0, "forbidden": 0, "rate_limited": 0}
        self.server: RemoteServer | None = None
        self.error = ""

    def stats(self) -> dict[str, Any]:
        refused = self.server.refused if self.server else 0
        return {
            "endpoint": self.settings.endpoint,
            "error": self.error,
            "refused_keys": refused,
            **self.counts,
        }

    async def serve(self, context: zmq.asyncio.Context, tg: anyio.abc.TaskGroup) -> None:
        keys = {c.key: c.name for c in self.settings.clients.values()}
        try:
            self.server = RemoteServer(
                context, self.settings.endpoint, self.settings.key_file, keys
            )
        except (OSError, ValueError) as e:
            # The fleet runs on without it; the local socket still answers.
            self.error = f"{self.settings.endpoint}: {e}"
            self._host.events.emit("remote_failed", level="error", error=self.error)
            return
        log.info("remote_listening", endpoint=self.server.address, clients=sorted(self._roles))
        try:
            while True:
                envelope, payload, client = await self.server.recv()
                self._take(tg, envelope, payload, client)
        finally:
            self.server.close()

    def _take(
        self, tg: anyio.abc.TaskGroup, envelope: list[bytes], payload: bytes, client: str
    ) -> None:
        self.counts["requests"] += 1
        if not self._within_rate(client):  # before decoding: junk counts against the rate too
            message = (
                f"over {self.settings.rate_per_s:g} requests per second (burst "
                f"{self.settings.burst}); slow down"
            )
            self._reply(envelope, protocol.Reply(0, False, None, "rate_limited", message))
            return
        try:
            request = protocol.decode_request(payload)
        except ProtocolError as e:
            self.counts["bad_frames"] += 1
            log.warning("frame_rejected", socket="remote", client=client, reason=str(e))
            self._reply(envelope, protocol.Reply(0, False, None, "bad_request", str(e)))
            return
        role = self._roles.get(client, "")
        refusal = roles.refusal(role, request.cmd)
        if refusal is not None:
            self.counts["forbidden"] += 1
            self._audit(client, request, "forbidden")
            self._reply(envelope, protocol.Reply(request.id, False, None, "forbidden", refusal))
            return
        self._audit(client, request, "accepted")
        tg.start_soon(self._answer, envelope, request, client)

    def _within_rate(self, client: str) -> bool:
        """The client's token bucket; one `remote_rate_limited` event per streak of refusals."""
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = TokenBucket(self.settings.rate_per_s, self.settings.burst, now)
            self._buckets[client] = bucket
        if bucket.take(now):
            self._limited.discard(client)
            return True
        self.counts["rate_limited"] += 1
        if client not in self._limited:
            self._limited.add(client)
            self._host.events.emit("remote_rate_limited", level="warning", client=client)
        return False

    def _audit(self, client: str, request: protocol.Request, outcome: str) -> None:
        args = {k: request.args[k] for k in _AUDITED_ARGS if k in request.args}
        self._host.events.emit(
            "remote_command", level="info" if outcome == "accepted" else "warning",
            client=client, role=self._roles.get(client, ""), cmd=request.cmd, outcome=outcome,
            **args,
        )  # fmt: skip

    async def _answer(self, envelope: list[bytes], request: protocol.Request, client: str) -> None:
        with self._host.replying():
            try:
                result = await self._commands.dispatch(request.cmd, request.args)
                reply = protocol.Reply(request.id, True, result)
            except CommandError as e:
                reply = protocol.Reply(request.id, False, None, e.code, str(e))
            except Exception as e:
                log.exception("command_crashed", cmd=request.cmd, client=client)
                reply = protocol.Reply(request.id, False, None, "internal", repr(e))
            self._reply(envelope, reply)

    def _reply(self, envelope: list[bytes], reply: protocol.Reply) -> None:
        assert self.server is not None
        self.server.send(envelope, protocol.encode_reply(reply))
