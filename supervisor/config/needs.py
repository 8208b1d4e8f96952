"""`needs = [...]` of a bot: the services it cannot work without, parsed once.

    redis://host[:port][/db]             connect, then PING
    postgresql://user@host[:port]/db     connect (psycopg), then SELECT 1 (also postgres://)
    tcp://host:port                      a TCP connect
    http://host[:port]/path              GET answers 2xx or 3xx (also https://)

Each problem is one line with its key path (`bots.NAME.needs[1]: ...`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from supervisor.config.fields import Table

DEFAULT_PORTS = {"redis": 6379, "postgresql": 5432, "http": 80, "https": 443}
_ALIASES = {"postgres": "postgresql"}
_SCHEMES = ("redis", "postgresql", "tcp", "http", "https")


@dataclass(frozen=True, slots=True)
class Need:
    """One needed service: its URL as written, and where to reach it."""

    url: str
    scheme: str  # one of _SCHEMES (aliases folded)
    host: str
    port: int


def take_needs(table: Table) -> tuple[Need, ...]:
    """Parse the bot's `needs` list; problems go to the table's list."""
    if not table.has("needs"):
        return ()
    raw: Any = table.take("needs", lambda v: v, [])
    where = table.key_path("needs")
    if not isinstance(raw, list):
        table.problems.append(f"{where}: expected a list of URLs, got {raw!r}")
        return ()
    needs = []
    for i, url in enumerate(raw):
        try:
            needs.append(parse_need(url))
        except ValueError as e:
            table.problems.append(f"{where}[{i}]: {e}")
    return tuple(needs)


def parse_need(url: Any) -> Need:
    """One URL; ValueError says what is wrong with it."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"expected a URL string, got {url!r}")
    parts = urlsplit(url)
    scheme = _ALIASES.get(parts.scheme, parts.scheme)
    if scheme not in _SCHEMES:
        known = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ValueError(f"unknown scheme {parts.scheme + '://'!r} in {url!r} (use {known})")
    try:
        port = parts.port
    except ValueError as e:
        raise ValueError(f"bad port in {url!r}: {e}") from None
    if not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    port = port or DEFAULT_PORTS.get(scheme)
    if port is None:
        raise ValueError(f"tcp:// needs a port, as in tcp://{parts.hostname}:5000")
    return Need(url, scheme, parts.hostname, port)
