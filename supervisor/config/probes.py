"""`[bots.NAME.probes.readiness|liveness|startup]` -> frozen probe specs.

Each probe table has exactly one of `exec = [argv]`, `http = "http://..."`,
`tcp = "host:port"`, and the Kubernetes timing keys. `{slot}` and `{port}`
expand per worker; `{port}` is the bot's `port` key plus the slot number.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from supervisor.config.fields import BadValue, Table, argv_list, duration, integer, string
from supervisor.policy.probe import Kind, Thresholds

_TIMING = ("interval_s", "timeout_s", "failure_threshold", "success_threshold", "initial_delay_s")


class Check(enum.StrEnum):
    EXEC = "exec"
    HTTP = "http"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe: what to check (with placeholders) and its thresholds."""

    kind: Kind
    check: Check
    target: tuple[str, ...]  # exec: argv; http: (url,); tcp: (host:port,)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def expand(self, slot: int, port: int) -> tuple[str, ...]:
        """The target for one worker: {slot} and {port} filled in."""
        return tuple(
            a.replace("{slot}", str(slot)).replace("{port}", str(port + slot)) for a in self.target
        )


@dataclass(frozen=True, slots=True)
class Probes:
    """A bot's probes; None where it has none of that kind."""

    readiness: ProbeSpec | None = None
    liveness: ProbeSpec | None = None
    startup: ProbeSpec | None = None

    def all(self) -> list[ProbeSpec]:
        return [p for p in (self.startup, self.readiness, self.liveness) if p is not None]


def take_probes(bot: Table, port: int) -> Probes:
    """The bot's `probes` table (absent: no probes)."""
    if not bot.has("probes"):
        return Probes()
    table = bot.sub("probes")
    found = {
        kind: _take_probe(table.sub(kind.value), kind, port)
        for kind in Kind
        if table.has(kind.value)
    }
    table.finish(known=[k.value for k in Kind])
    return Probes(found.get(Kind.READINESS), found.get(Kind.LIVENESS), found.get(Kind.STARTUP))


def _take_probe(table: Table, kind: Kind, port: int) -> ProbeSpec | None:
    start = len(table.problems)
    kinds = [c for c in Check if table.has(c.value)]
    table.used.update(c.value for c in kinds)
    if len(kinds) != 1:
        got = " and ".join(c.value for c in kinds) if kinds else "none"
        table.problems.append(
            f'{table.path}: give exactly one of "exec", "http", "tcp" (got {got})'
        )
    target = _take_target(table, kinds[0], port) if len(kinds) == 1 else ()
    thresholds = _take_thresholds(table, kind)
    table.finish(known=[c.value for c in Check] + list(_TIMING))
    if len(table.problems) != start:
        return None
    return ProbeSpec(kind, kinds[0], target, thresholds)


def _take_target(table: Table, check: Check, port: int) -> tuple[str, ...]:
    parse = {Check.EXEC: argv_list, Check.HTTP: _http_url, Check.TCP: _tcp_address}[check]
    target: tuple[str, ...] = table.take(check.value, parse, ())
    if not port and any("{port}" in a for a in target):
        table.problems.append(
            f"{table.key_path(check.value)}: {{port}} needs a port source; "
            "set the bot's `port` (worker N gets port + N, and env PORT)"
        )
    return target


def _take_thresholds(table: Table, kind: Kind) -> Thresholds:
    d = Thresholds()
    success = table.take("success_threshold", integer(minimum=1), d.success_threshold)
    if kind is not Kind.READINESS and success != 1:
        table.problems.append(
            f"{table.key_path('success_threshold')}: must be 1 for a {kind.value} probe "
            "(as in Kubernetes)"
        )
    return Thresholds(
        interval_s=table.take("interval_s", _positive_duration, d.interval_s),
        timeout_s=table.take("timeout_s", _positive_duration, d.timeout_s),
        failure_threshold=table.take("failure_threshold", integer(minimum=1), d.failure_threshold),
        success_threshold=success,
        initial_delay_s=table.take("initial_delay_s", duration, d.initial_delay_s),
    )


def _positive_duration(value: object) -> float:
    seconds = duration(value)
    if seconds <= 0:
        raise BadValue(f"expected a duration > 0, got {value!r}")
    return seconds


def _http_url(value: object) -> tuple[str, ...]:
    url = string(value)
    parts = urlsplit(url.replace("{port}", "1").replace("{slot}", "0"))
    if parts.scheme != "http" or not parts.hostname:
        raise BadValue(f'expected an URL such as "http://127.0.0.1:{{port}}/healthz", got "{url}"')
    return (url,)


def _tcp_address(value: object) -> tuple[str, ...]:
    address = string(value)
    host, _, port = address.replace("{port}", "1").replace("{slot}", "0").rpartition(":")
    if not host or not port.isdigit():
        raise BadValue(f'expected "host:port" such as "127.0.0.1:{{port}}", got "{address}"')
    return (address,)


def split_address(address: str) -> tuple[str, int]:
    """'host:port' -> (host, port); the config has checked the shape."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
