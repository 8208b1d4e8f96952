"""deploy/kubernetes/remote.yaml stays true: its Service reaches the port the config it shows
listens on, in the pods of the main manifest, and the config it shows is valid."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

from supervisor.config import model as config
from tests.unit.test_deploy import DEPLOY, configmap_toml

REMOTE = (DEPLOY / "kubernetes" / "remote.yaml").read_text()


def test_the_service_selects_the_fleets_pods_on_the_remote_port() -> None:
    port = re.search(r'remote = "tcp://0\.0\.0\.0:(\d+)"', REMOTE)
    assert port is not None
    assert f"port: {port.group(1)}, targetPort: {port.group(1)}" in REMOTE
    assert f"containerPort: {port.group(1)}" in REMOTE
    main = (DEPLOY / "kubernetes" / "supervisor.yaml").read_text()
    assert "selector: {app: bot-fleet}" in REMOTE
    assert "labels: {app: bot-fleet}" in main


def test_the_config_it_shows_is_valid(tmp_path: Path) -> None:
    """The [supervisor] lines of the comment, added to the shipped config, load (with a key
    file at the mount path's name, group-readable as the Secret's defaultMode makes it)."""
    block = REMOTE.split("[supervisor] table:\n#\n", 1)[1].split("\n#\n", 1)[0]
    lines = textwrap.dedent("\n".join(line[1:] for line in block.splitlines()))
    key = tmp_path / "server.key_secret"
    key.write_text('curve\n    secret-key = "x"\n')
    os.chmod(key, 0o440)
    lines = lines.replace("/etc/supervisor-remote/server.key_secret", str(key))
    lines = lines.replace("<alice's public key, from keys/alice.key>", "a" * 40)
    clients = lines.index("[supervisor.clients")
    head, tail = lines[:clients], lines[clients:]
    text = configmap_toml().replace("[supervisor]\n", "[supervisor]\n" + head, 1)
    text = text.replace("\n[bots.", "\n" + tail + "\n[bots.", 1)
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    loaded = config.load(path).supervisor.remote
    assert loaded is not None
    assert loaded.endpoint == "tcp://0.0.0.0:7320"
    assert loaded.clients["alice"].role == "operate"
