"""Which control requests get served: one peer's flood cannot starve the others.

Pure bookkeeping, no sockets and no clock (the caller passes `now`), so the local ipc control
socket and a remote (CURVE) endpoint can each hold one `Admission` with their own limits.

Each peer (a ROUTER identity) has a token bucket (`rate_per_s` sustained, `burst` at once) and
at most `per_peer_inflight` requests being answered; the whole endpoint has at most
`total_inflight`. A request past any of them is refused at once, before it is decoded, and
counted by reason: `rate_limited`, `peer_busy`, `overloaded`. Peers are forgotten once their
bucket is full again and nothing of theirs is in flight, and at most `max_peers` are tracked (a
client that opens a new connection per request is a new peer each time; past the table's size
the oldest idle entries go, and the total limit still holds).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

RATE_LIMITED, PEER_BUSY, OVERLOADED = "rate_limited", "peer_busy", "overloaded"


@dataclass(frozen=True, slots=True)
class Limits:
    rate_per_s: float = 200.0  # sustained requests per second per peer
    burst: float = 50.0  # requests a peer may send at once
    per_peer_inflight: int = 8  # answered at the same time, per peer
    total_inflight: int = 256  # answered at the same time, all peers together
    max_peers: int = 4096  # peers tracked at once


@dataclass(slots=True)
class _Peer:
    tokens: float
    updated: float
    inflight: int = 0


@dataclass
class Admission:
    limits: Limits = field(default_factory=Limits)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> requests refused
    admitted: int = 0
    inflight: int = 0
    _peers: OrderedDict[bytes, _Peer] = field(default_factory=OrderedDict)

    def admit(self, peer: bytes, now: float) -> str:
        """ "" if the request may be served (then call `done(peer)` when answered), else the
        reason it is refused (already counted)."""
        state = self._peer(peer, now)
        if self.inflight >= self.limits.total_inflight:
            return self._drop(OVERLOADED)
        if state.inflight >= self.limits.per_peer_inflight:
            return self._drop(PEER_BUSY)
        if state.tokens < 1.0:
            return self._drop(RATE_LIMITED)
        state.tokens -= 1.0
        state.inflight += 1
        self.inflight += 1
        self.admitted += 1
        return ""

    def done(self, peer: bytes) -> None:
        """A request admitted for peer has been answered (or failed)."""
        self.inflight = max(0, self.inflight - 1)
        state = self._peers.get(peer)
        if state is not None:
            state.inflight = max(0, state.inflight - 1)

    @property
    def peers(self) -> int:
        return len(self._peers)

    def stats(self) -> dict[str, object]:
        return {
            "admitted": self.admitted,
            "inflight": self.inflight,
            "peers": len(self._peers),
            "dropped": dict(self.dropped),
        }

    def _drop(self, reason: str) -> str:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        return reason

    def _peer(self, peer: bytes, now: float) -> _Peer:
        limits = self.limits
        state = self._peers.get(peer)
        if state is None:
            self._forget_idle(now)
            state = self._peers[peer] = _Peer(limits.burst, now)
        else:
            elapsed = max(0.0, now - state.updated)  # a clock that went back refills nothing
            state.tokens = min(limits.burst, state.tokens + elapsed * limits.rate_per_s)
            state.updated = now
            self._peers.move_to_end(peer)
        return state

    def _forget_idle(self, now: float) -> None:
        """Keep the table bounded: drop idle peers whose bucket has refilled, oldest first,
        and past max_peers the oldest idle ones whatever their bucket."""
        limits = self.limits
        full_after = limits.burst / limits.rate_per_s if limits.rate_per_s > 0 else float("inf")
        for key in list(self._peers):
            if len(self._peers) < limits.max_peers and len(self._peers) < 64:
                break
            state = self._peers[key]
            if state.inflight:
                continue
            if now - state.updated >= full_after or len(self._peers) >= limits.max_peers:
                del self._peers[key]
