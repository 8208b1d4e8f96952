"""The client config for remote hosts, and the merge of many hosts' status. Pure but for reading.

    ~/.config/supervisor/hosts.toml      ($SUPERVISOR_HOSTS_FILE overrides the path)

    [hosts.web1]
    endpoint = "tcp://10.0.0.5:7320"
    server_key = "Z85 public key of that supervisor"     # its `remote_key_file`'s .key
    key_file = "~/.config/supervisor/alice.key_secret"   # this client's pair

`key_file` may be set once at the top level for every host. Mistakes name
their key path and exit 2 like the main config's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.config.fields import BadValue, Table, string
from supervisor.config.remote import public_key, tcp_endpoint
from supervisor.config.rundir import read_toml
from supervisor.errors import ConfigError

ENV_VAR = "SUPERVISOR_HOSTS_FILE"
DEFAULT_PATH = "~/.config/supervisor/hosts.toml"


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    endpoint: str
    server_key: str
    key_file: Path


def hosts_path(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(ENV_VAR) or DEFAULT_PATH).expanduser()


def load_hosts(path: Path) -> dict[str, Host]:
    if not path.exists():
        raise ConfigError([f"{path}: no hosts file (set {ENV_VAR} or create it; see README)"])
    return parse_hosts(read_toml(str(path)), path.parent)


def parse_hosts(raw: dict[str, Any], base: Path) -> dict[str, Host]:
    """Every `[hosts.NAME]`, checked; ConfigError lists each problem with its key path."""
    problems: list[str] = []
    top = Table(raw, "", problems)
    default_key = top.take("key_file", string, "")
    table = top.sub("hosts")
    hosts: dict[str, Host] = {}
    for name, raw_host in table.raw.items():
        table.used.add(name)
        host = _parse_host(Table(raw_host, f"hosts.{name}", problems), name, default_key, base)
        if host is not None:
            hosts[name] = host
    top.finish()
    if not hosts and not problems:
        problems.append("hosts: no host listed; add [hosts.NAME] with endpoint and server_key")
    if problems:
        raise ConfigError(problems)
    return hosts


def _parse_host(t: Table, name: str, default_key: str, base: Path) -> Host | None:
    endpoint = t.take("endpoint", tcp_endpoint, "")
    server_key = t.take("server_key", public_key, "")
    key_file = t.take("key_file", string, default_key)
    t.finish()
    for key, value in (("endpoint", endpoint), ("server_key", server_key), ("key_file", key_file)):
        if not value and not t.has(key):
            t.problems.append(f"{t.key_path(key)}: required")
    if not (endpoint and server_key and key_file):
        return None
    path = Path(key_file).expanduser()
    return Host(name, endpoint, server_key, path if path.is_absolute() else base / path)


def pick(hosts: dict[str, Host], names: list[str]) -> list[Host]:
    """The hosts named (in that order), or a clear error naming the ones that are not listed."""
    unknown = [n for n in names if n not in hosts]
    if unknown:
        known = ", ".join(hosts) or "none"
        raise ConfigError([f"hosts.{n}: not in the hosts file (hosts: {known})" for n in unknown])
    return [hosts[n] for n in names]


def split_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadValue("expected host names separated by commas")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------- many hosts


def merge_status(results: dict[str, dict[str, Any] | str]) -> dict[str, Any]:
    """Per host a status (dict) or why it did not answer (str) -> one object for --json."""
    merged: dict[str, Any] = {"hosts": {}, "unreachable": {}}
    for host, result in results.items():
        if isinstance(result, str):
            merged["unreachable"][host] = result
        else:
            merged["hosts"][host] = result
    return merged


def all_running(merged: dict[str, Any]) -> bool:
    """Exit 0 only if every host answered and every bot on each runs as desired."""
    return not merged["unreachable"] and all(
        b["state"] == "running" for s in merged["hosts"].values() for b in s["bots"].values()
    )


def format_hosts(merged: dict[str, Any]) -> str:
    """One table: a row per (host, bot); a host that did not answer says so in its row."""
    rows = [["HOST", "BOT", "STATE", "READY", "MODE", "RESTARTS", "WORKERS"]]
    for host, status in merged["hosts"].items():
        for name, b in status["bots"].items():
            alive = sum(1 for w in b["workers"] if w["pid"] is not None)
            rows.append([
                host, name, b["state"], f"{b['ready']}/{b['desired']}", b["mode"],
                str(b["restarts"]), str(alive),
            ])  # fmt: skip
        if not status["bots"]:
            rows.append([host, "-", "no bots", "", "", "", ""])
    for host in merged["unreachable"]:
        rows.append([host, "-", "unreachable", "-", "-", "-", "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += [f"{host}: {why}" for host, why in merged["unreachable"].items()]
    return "\n".join(lines)
