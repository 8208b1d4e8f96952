"""The supervisor's side of the worker socket.

Every worker gets a random token in its environment at spawn, and a
`WorkerLink` that holds what the channel has learned of it: whether it
said HELLO and READY, its last heartbeat, its metrics. Each batch is
decoded with one unpack, authenticated by its token and applied to that
link; heartbeats and the last batch (BYE) are acknowledged. A frame that
does not decode, breaks the schema or carries an unknown token is dropped
and counted by reason; it is never fatal and never holds up other workers.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.lowlevel
import structlog

from supervisor.daemon.events import Events
from supervisor.errors import ProtocolError
from supervisor.wire import protocol
from supervisor.wire.transport import WorkerServer

log = structlog.get_logger("supervisor.channel")

_RECENTLY_CLOSED = 4096  # tokens of exited workers whose last frames may still arrive
_TAKE_AT_ONCE = 8  # batches (of up to 256 messages) handled before the loop gets a turn


@dataclass
class WorkerLink:
    """What the supervisor knows of one worker process through the channel."""

    bot: str
    slot: int
    token: bytes
    started_at: float = field(default_factory=time.monotonic)
    identity: bytes | None = None
    said_hello: bool = False
    ready: bool = False
    ready_at: float | None = None
    last_heartbeat: float | None = None  # or any batch: under a flood heartbeats queue up
    messages: int = 0
    dropped: int = 0  # metrics the SDK shed because we were behind
    gauges: dict[str, float] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    on_ready: Callable[[WorkerLink], None] | None = None
    on_hello: Callable[[WorkerLink], None] | None = None
    revoke_on_hello: bool = True  # ready by timer, then HELLO: it must say READY after all

    def mark_ready(self, now: float) -> None:
        if not self.ready:
            self.ready, self.ready_at = True, now
            if self.on_ready is not None:
                self.on_ready(self)

    def metrics(self) -> dict[str, float]:
        return self.gauges | self.counters


class Channel:
    def __init__(
        self,
        server: WorkerServer,
        events: Events,
        on_receive: Callable[[], None] | None = None,  # once per receive (memory.Trimmer)
    ) -> None:
        self._server = server
        self._events = events
        self._links: dict[bytes, WorkerLink] = {}
        self._closed: OrderedDict[bytes, None] = OrderedDict()
        self.plugin_handlers: dict[int, Callable[[WorkerLink, list[Any]], None]] = {}
        self.rejected: dict[str, int] = {}
        self.messages = 0
        self.batches = 0
        self._on_receive = on_receive

    # ------------------------------------------------------------ links

    def open_link(self, bot: str, slot: int) -> WorkerLink:
        """A new link and its token, before the worker is started."""
        link = WorkerLink(bot, slot, os.urandom(protocol.TOKEN_BYTES))
        self._links[link.token] = link
        return link

    def close_link(self, link: WorkerLink) -> None:
        if self._links.pop(link.token, None) is not None:
            self._closed[link.token] = None
            while len(self._closed) > _RECENTLY_CLOSED:
                self._closed.popitem(last=False)

    def send(self, link: WorkerLink, messages: list[list[Any]]) -> bool:
        """Commands to a worker (CONFIG, DRAIN, STOP); False if it cannot be reached."""
        if link.identity is None:
            return False
        return self._server.send(link.identity, protocol.encode_commands(messages))

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        while True:
            received = await self._server.recv_many(_TAKE_AT_ONCE)
            if self._on_receive is not None:
                self._on_receive()
            for frames in received:
                self.handle(frames)
            # A recv that finds a message waiting returns without letting the loop run:
            # give control requests and exits their turn even under a flood.
            await anyio.lowlevel.checkpoint()

    def handle(self, frames: list[bytes]) -> None:
        """One ZeroMQ message from a worker: [identity, batch]."""
        if len(frames) != 2:
            self._reject("frames", f"{len(frames) - 1} payload frames, expected 1")
            return
        identity, frame = frames
        try:
            token, messages = protocol.decode_batch(frame)
        except ProtocolError as e:
            reason = "too_large" if "over the limit" in str(e) else "undecodable"
            self._reject(reason, str(e))
            return
        link = self._links.get(token)
        if link is None:
            self._reject("late" if token in self._closed else "bad_token", "")
            return
        link.identity = identity
        acks = self._apply(link, messages)
        if acks:
            self._server.send(identity, protocol.encode_commands(acks))

    def _apply(self, link: WorkerLink, messages: list[list[Any]]) -> list[list[Any]]:
        """Apply a batch to its link; returns the ACKs to send (the hot path)."""
        now = time.monotonic()
        # Any batch shows the bot's loop ran (the SDK sends only from it), and a heartbeat
        # stuck behind thousands of the worker's own frames must not get it killed.
        link.last_heartbeat = now
        acks: list[list[Any]] = []
        gauges, counters = link.gauges, link.counters
        for m in messages:
            kind = m[0]
            if kind == protocol.METRIC:
                if m[3]:
                    counters[m[1]] = counters.get(m[1], 0) + m[2]
                else:
                    gauges[m[1]] = m[2]
            elif kind == protocol.HEARTBEAT:
                acks.append([protocol.ACK, m[1]])
            elif kind == protocol.READY:
                link.mark_ready(now)
            elif kind == protocol.HELLO:
                self._hello(link, m)
            elif kind == protocol.LOG:
                self._events.emit("worker_log", m[1], bot=link.bot, worker=link.slot, line=m[2])
            elif kind == protocol.DROPPED:
                link.dropped += m[1]
            elif kind == protocol.BYE:
                acks.append([protocol.ACK, m[1]])
            else:
                handler = self.plugin_handlers.get(kind)
                if handler is not None:
                    handler(link, m)
        link.messages += len(messages)
        self.messages += len(messages)
        self.batches += 1
        return acks

    def _hello(self, link: WorkerLink, m: list[Any]) -> None:
        if (m[1], m[2]) != (link.bot, link.slot):
            log.warning("worker_hello_mismatch", bot=link.bot, worker=link.slot, said=m[1:3])
        if link.ready and not link.said_hello and link.revoke_on_hello:
            link.ready = False  # it was taken for a bot without the SDK; now it must say READY
        link.said_hello = True
        if link.on_hello is not None:
            link.on_hello(link)

    def _reject(self, reason: str, detail: str) -> None:
        count = self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if count & (count - 1) == 0:  # 1, 2, 4, 8, ...: a flood must not flood the log
            log.warning(
                "frame_rejected", socket="workers", reason=reason, detail=detail, count=count
            )

    def stats(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "batches": self.batches,
            "rejected": dict(self.rejected),
            "links": len(self._links),
        }
