"""Two supervisors on two "hosts" (network namespaces joined by a veth pair), scraped by a real
Prometheus server, and one of them scaled from the other over CURVE."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.cli.hosts import ENV_VAR
from tests.integration.harness import Supervisor, wait_until
from tests.integration.netns_kit import Hosts, can_make_namespaces
from tests.integration.remote_kit import hosts_file, key_pair, remote_config

PROMETHEUS = shutil.which("prometheus")
_NO_NETNS = can_make_namespaces()
pytestmark = [
    pytest.mark.skipif(bool(_NO_NETNS), reason=_NO_NETNS or "-"),
    pytest.mark.skipif(PROMETHEUS is None, reason="needs prometheus (Debian's; .ci/run)"),
]
REMOTE_PORT, MONITOR_PORT, PROM_PORT = 7320, 9321, 9090  # inside the namespaces only


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    made = Hosts()
    try:
        yield made.open()
    finally:
        made.close()


@contextlib.contextmanager
def running(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def prometheus_config(path: Path, hosts: Hosts) -> Path:
    targets = "\n".join(
        f'      - targets: ["{hosts.addresses[h]}:{MONITOR_PORT}"]\n        labels: {{host: {h}}}'
        for h in ("a", "b")
    )
    path.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms}\n"
        f"scrape_configs:\n  - job_name: supervisor\n    static_configs:\n{targets}\n"
    )
    return path


def query(hosts: Hosts, promql: str) -> dict[str, float]:
    """Prometheus's HTTP API, asked from inside host a: host label -> value."""
    out = subprocess.run(
        [*hosts.wrap("a"), "curl", "-sf", "-G", f"http://127.0.0.1:{PROM_PORT}/api/v1/query",
         "--data-urlencode", f"query={promql}"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        return {}
    result = json.loads(out.stdout)["data"]["result"]
    return {r["metric"].get("host", "?"): float(r["value"][1]) for r in result}


def workers_seen(hosts: Hosts) -> dict[str, float]:
    return query(hosts, 'sum by (host) (supervisor_workers{bot="s",state="running"})')


def start_host(  # noqa: PLR0917  (one host's whole set-up)
    sup: Supervisor, hosts: Hosts, host: str, workers: int, clients: Any, server: Path
) -> None:
    address = hosts.addresses[host]
    sup.config_path.write_text(
        remote_config(f"tcp://{address}:{REMOTE_PORT}", server, clients)
        + f'[bots.s]\ncommand = ["sleep", "1000"]\nworkers = {workers}\n'
        + f'[plugins.monitor]\nlisten = "{address}:{MONITOR_PORT}"\ninterval_s = "250ms"\n'
    )
    sup.start(wrap=hosts.wrap(host))  # its control socket is a unix socket: the test reaches it
    sup.wait_running("s", workers)


def test_prometheus_sees_two_hosts_and_a_remote_scale(hosts: Hosts, tmp_path: Path) -> None:
    """Prometheus (in host a) scrapes both supervisors over the veth; an operate key on host b
    scales host a and Prometheus sees it; a read key is refused the scale; a key that is not
    listed is refused before any command runs."""
    keys = {
        n: key_pair(tmp_path / "keys", n)
        for n in ("server_a", "server_b", "ops", "viewer", "stranger")
    }
    clients = {"ops": (keys["ops"][0], "operate"), "viewer": (keys["viewer"][0], "read")}
    a, b = Supervisor(), Supervisor()
    prom_dir = Path(tempfile.mkdtemp(prefix="prom-", dir="/tmp"))
    try:
        start_host(a, hosts, "a", 2, clients, keys["server_a"][1])
        start_host(b, hosts, "b", 1, clients, keys["server_b"][1])
        config = prometheus_config(prom_dir / "prometheus.yml", hosts)
        cmd = [*hosts.wrap("a"), str(PROMETHEUS), f"--config.file={config}",
               f"--storage.tsdb.path={prom_dir / 'data'}",
               f"--web.listen-address=127.0.0.1:{PROM_PORT}"]  # fmt: skip
        with running(cmd, prom_dir / "prometheus.log"):
            seen = wait_until(
                lambda: (s := workers_seen(hosts)) == {"a": 2.0, "b": 1.0} and s,
                timeout_s=60, what="Prometheus to see both hosts",
            )  # fmt: skip
            assert seen == {"a": 2.0, "b": 1.0}
            from_b = remote_cli(hosts, tmp_path, keys)
            refused = from_b("viewer", "scale", "s", "3")
            assert refused.returncode == 1
            assert "forbidden" in refused.stderr or "needs the operate role" in refused.stderr
            stranger = from_b("stranger", "status")
            assert stranger.returncode == 4
            assert "refused this client's key" in stranger.stderr
            scaled = from_b("ops", "scale", "s", "3")
            assert scaled.returncode == 0, scaled.stderr
            wait_until(
                lambda: workers_seen(hosts) == {"a": 3.0, "b": 1.0},
                timeout_s=60, what="Prometheus to see host a at 3",
            )  # fmt: skip
        audit = a.events("remote_command")
        assert {(e["client"], e["cmd"], e["outcome"]) for e in audit} == {
            ("viewer", "scale", "forbidden"),
            ("ops", "scale", "accepted"),
        }
        assert a.request("status")["supervisor"]["remote"]["refused_keys"] >= 1
        assert b.request("status")["bots"]["s"]["desired"] == 1
    finally:
        for sup in (a, b):
            sup.cleanup()
        shutil.rmtree(prom_dir, ignore_errors=True)


def remote_cli(hosts: Hosts, tmp_path: Path, keys: dict[str, tuple[str, Path]]) -> Any:
    """The real CLI, run on host b, with a hosts file naming host a for each client key."""

    def run(client: str, *args: str) -> subprocess.CompletedProcess[str]:
        path = hosts_file(
            tmp_path / f"hosts-{client}.toml",
            {
                "a": (
                    f"tcp://{hosts.addresses['a']}:{REMOTE_PORT}",
                    keys["server_a"][0],
                    keys[client][1],
                )
            },
        )
        cmd = [*hosts.wrap("b"), sys.executable, "-m", "supervisor", "--host", "a", *args]
        env = os.environ | {ENV_VAR: str(path)}
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)

    return run
