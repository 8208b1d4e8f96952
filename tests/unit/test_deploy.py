"""The files in deploy/ stay true: the container's config is valid, the Kubernetes ConfigMap
holds the same file, and the probes and unit point where the supervisor answers."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from supervisor.config import model as config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def configmap_toml() -> str:
    """The `supervisor.toml: |` block of the manifest, unindented."""
    manifest = (DEPLOY / "kubernetes" / "supervisor.yaml").read_text()
    block = manifest.split("  supervisor.toml: |\n", 1)[1].split("\n---\n", 1)[0]
    return textwrap.dedent(block).rstrip("\n") + "\n"


def test_the_container_config_is_valid_and_the_configmap_is_the_same_file() -> None:
    """The container's config loads, and the ConfigMap carries it unchanged."""
    cfg = config.load(DEPLOY / "container" / "supervisor.toml")
    assert str(cfg.supervisor.run_dir) == "/var/lib/supervisor/run"
    assert cfg.plugins["monitor"].settings.listen == "0.0.0.0:9321"
    assert configmap_toml() == (DEPLOY / "container" / "supervisor.toml").read_text()


def test_probes_use_the_monitors_health_endpoints_on_its_port() -> None:
    """Liveness on /healthz, readiness on /readyz, on the monitor's port; grace > shutdown."""
    manifest = (DEPLOY / "kubernetes" / "supervisor.yaml").read_text()
    probes = dict(re.findall(r"(\w+Probe):\n\s+httpGet: \{path: (/\w+), port: monitor\}", manifest))
    assert probes == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    assert "{name: monitor, containerPort: 9321}" in manifest
    grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", manifest)[1])  # type: ignore[index]
    assert (
        grace > config.load(DEPLOY / "container" / "supervisor.toml").supervisor.shutdown_timeout_s
    )


def test_the_systemd_unit_is_type_notify_with_a_watchdog_and_mixed_kill() -> None:
    """The unit asks for what the supervisor gives: notify, a watchdog, an ordered stop."""
    unit = (DEPLOY / "systemd" / "supervisor.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.MULTILINE))
    assert settings["Type"] == "notify"
    assert settings["KillMode"] == "mixed"
    assert "WatchdogSec" in settings
    assert settings["ExecStart"].endswith("supervisor run -c /etc/supervisor/supervisor.toml")
    # Delegated: the supervisor makes a cgroup per bot under the service's (issue 16).
    assert {"cpu", "memory", "pids"} <= set(settings["Delegate"].split())


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit() -> None:
    """Everything but the install path of the program checks out."""
    out = subprocess.run(
        ["systemd-analyze", "verify", str(DEPLOY / "systemd" / "supervisor.service")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    problems = [
        line for line in out.stderr.splitlines()
        if line.strip() and "/opt/supervisor/.venv/bin/supervisor is not executable" not in line
    ]  # fmt: skip
    assert problems == []
