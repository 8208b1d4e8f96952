"""Keys, configs and a hosts file for the remote-endpoint tests (CURVE with real libzmq)."""

from __future__ import annotations

import socket
from pathlib import Path

from supervisor.wire import curve


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def key_pair(directory: Path, name: str) -> tuple[str, Path]:
    """A new pair on disk: (public key in Z85, path of the secret file)."""
    public, secret = curve.new_key_pair(directory, name)
    return curve.read_key_file(public)[0].decode(), secret


def remote_config(
    endpoint: str, server_secret: Path, clients: dict[str, tuple[str, str]], extra: str = ""
) -> str:
    """The [supervisor] table with a remote endpoint; clients: name -> (public key, role)."""
    lines = [
        "[supervisor]",
        'run_dir = "run"',
        'log_format = "json"',
        'log_level = "debug"',
        "shutdown_timeout_s = 20",
        f'remote = "{endpoint}"',
        f'remote_key_file = "{server_secret}"',
        extra,
    ]
    for name, (key, role) in clients.items():
        lines += [f"[supervisor.clients.{name}]", f'key = "{key}"', f'role = "{role}"']
    return "\n".join(lines) + "\n\n"


def hosts_file(path: Path, hosts: dict[str, tuple[str, str, Path]]) -> Path:
    """name -> (endpoint, server public key, client secret file)."""
    text = ""
    for name, (endpoint, server_key, key_file) in hosts.items():
        text += (
            f'[hosts.{name}]\nendpoint = "{endpoint}"\nserver_key = "{server_key}"\n'
            f'key_file = "{key_file}"\n'
        )
    path.write_text(text)
    return path
