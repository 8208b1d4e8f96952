"""The `[supervisor] remote*` keys and `[supervisor.clients.NAME]` tables.

    [supervisor]
    remote = "tcp://0.0.0.0:7320"        # off unless set; CURVE is then mandatory
    remote_key_file = "keys/server.key_secret"  # `supervisor keys new server` writes it
    remote_rate_per_s = 20               # requests per second per client (a token bucket)
    remote_burst = 40

    [supervisor.clients.alice]
    key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   # the client's public key (Z85)
    role = "operate"                     # read | operate | admin (config/roles.py)

Keys are only checked for shape here (40 characters of the Z85 alphabet);
libzmq reads them. The server's secret key file must not be readable by
others (its group may: a Kubernetes Secret mounted with fsGroup is 0440).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from supervisor.config.fields import BadValue, Table, choice, integer, number, string
from supervisor.config.roles import ROLES

_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
_TCP = re.compile(r"^tcp://(\*|\[[0-9a-fA-F:.]+\]|[\w.\-]+):(\d{1,5})$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Client:
    """One remote client: its name (in audit events), public key and role."""

    name: str
    key: str
    role: str


@dataclass(frozen=True, slots=True)
class RemoteSettings:
    endpoint: str
    key_file: Path
    clients: Mapping[str, Client]
    rate_per_s: float = 20.0
    burst: int = 40


def take_remote(sup: Table, base: Path) -> RemoteSettings | None:
    """Read the remote keys of `[supervisor]`; None when `remote` is not set."""
    endpoint = sup.take("remote", tcp_endpoint, "")
    key_file = sup.take("remote_key_file", string, "")
    rate = sup.take("remote_rate_per_s", number(minimum=0.1), 20.0)
    burst = sup.take("remote_burst", integer(minimum=1), 40)
    clients_table = sup.sub("clients")
    clients = _take_clients(clients_table)
    if not endpoint:
        if key_file or clients:
            what = "remote_key_file" if key_file else "clients"
            sup.problems.append(f"{sup.key_path(what)}: set only with remote (the endpoint)")
        return None
    path = _secret_key_file(sup, key_file, base)
    if not clients_table.raw:
        sup.problems.append(
            f"{sup.key_path('clients')}: remote is set but no client is listed; "
            "add [supervisor.clients.NAME] with key and role"
        )
    return RemoteSettings(endpoint, path, MappingProxyType(clients), rate, burst)


def tcp_endpoint(value: Any) -> str:
    text = string(value)
    match = _TCP.match(text)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise BadValue(f'expected "tcp://HOST:PORT" (e.g. "tcp://0.0.0.0:7320"), got "{text}"')
    return text


def public_key(value: Any) -> str:
    text = string(value)
    if not _Z85_KEY.match(text):
        raise BadValue(
            "expected a CURVE public key: 40 characters of Z85, as `supervisor keys new` prints"
        )
    return text


def _take_clients(table: Table) -> dict[str, Client]:
    clients: dict[str, Client] = {}
    seen: dict[str, str] = {}
    for name, raw in table.raw.items():
        table.used.add(name)
        sub = Table(raw, table.key_path(name), table.problems)
        if not _NAME.match(name):
            table.problems.append(f"{sub.path}: a client name is letters, digits, . _ - (1-64)")
        key = sub.take("key", public_key, "")
        role = sub.take("role", choice(*ROLES), "")
        sub.finish()
        if not key or not role:
            for missing in [k for k, v in (("key", key), ("role", role)) if not v]:
                if not sub.has(missing):
                    table.problems.append(f"{sub.key_path(missing)}: required")
            continue
        if key in seen:
            table.problems.append(f"{sub.key_path('key')}: the same key as client {seen[key]}")
            continue
        seen[key] = name
        clients[name] = Client(name, key, role)
    return clients


def _secret_key_file(sup: Table, value: str, base: Path) -> Path:
    where = sup.key_path("remote_key_file")
    if not value:
        sup.problems.append(f"{where}: required with remote (`supervisor keys new server`)")
        return Path()
    path = Path(value) if os.path.isabs(value) else base / value
    try:
        mode = path.stat().st_mode
        text = path.read_text(errors="replace")
    except OSError as e:
        sup.problems.append(f"{where}: cannot read {path}: {e.strerror or e}")
        return path
    if "secret-key" not in text:
        sup.problems.append(f"{where}: {path} holds no secret key (use NAME.key_secret)")
    if mode & 0o007:  # group may read: Kubernetes' fsGroup mounts Secrets 0440
        sup.problems.append(
            f"{where}: {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it"
        )
    return path
