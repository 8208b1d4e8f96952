"""The remote endpoint: CURVE keys admitted by ZAP, roles, audit events, limits, many hosts."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supervisor.cli import hosts as hostsfile
from supervisor.cli import remote
from supervisor.errors import CommandError, UnreachableError
from supervisor.wire import curve, protocol
from tests.integration.harness import Supervisor, wait_until
from tests.integration.remote_kit import free_port, hosts_file, key_pair, remote_config

SLEEPER = '[bots.s]\ncommand = ["sleep", "1000"]\nworkers = 1\n'


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[str, Path]]:
    return {n: key_pair(tmp_path / "keys", n) for n in ("server", "alice", "bob", "carol", "eve")}


def start_remote(
    sup: Supervisor, keys: dict[str, tuple[str, Path]], extra: str = ""
) -> tuple[str, dict[str, hostsfile.Host]]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    clients = {
        "alice": (keys["alice"][0], "operate"),
        "bob": (keys["bob"][0], "read"),
        "carol": (keys["carol"][0], "admin"),
    }
    sup.config_path.write_text(remote_config(endpoint, keys["server"][1], clients, extra) + SLEEPER)
    sup.start()
    sup.wait_running("s", 1)
    as_client = {
        n: hostsfile.Host(n, endpoint, keys["server"][0], keys[n][1])
        for n in ("alice", "bob", "carol", "eve")
    }
    wait_until(lambda: _answers(as_client["bob"]), 10, "the remote endpoint to answer")
    return endpoint, as_client


def _answers(host: hostsfile.Host) -> bool:
    try:
        remote.request(host, "ping", {}, 1.0)
    except UnreachableError:
        return False
    return True


def remote_events(sup: Supervisor, client: str) -> list[dict[str, object]]:
    """Its audit events, but for the pings start_remote sent."""
    events = sup.events("remote_command")
    return [e for e in events if e.get("client") == client and e.get("cmd") != "ping"]


def test_roles_decide_and_every_command_is_audited(
    sup: Supervisor, keys: dict[str, tuple[str, Path]]
) -> None:
    """read may see but not scale (forbidden names `operate`), operate scales, and each
    remote command is an event with the client's name; the local socket answers as before."""
    _, as_client = start_remote(sup, keys)
    status = remote.request(as_client["bob"], "status", {}, 10.0)
    assert status["bots"]["s"]["running"] == 1
    with pytest.raises(CommandError) as refused:
        remote.request(as_client["bob"], "scale", {"bot": "s", "count": 2}, 10.0)
    assert refused.value.code == "forbidden"
    assert "operate" in str(refused.value)
    with pytest.raises(CommandError) as refused:
        remote.request(as_client["alice"], "shutdown", {}, 10.0)
    assert refused.value.code == "forbidden"
    assert "admin" in str(refused.value)
    result = remote.request(as_client["alice"], "scale", {"bot": "s", "count": 2}, 10.0)
    assert (result["previous"], result["desired"]) == (1, 2)
    sup.wait_running("s", 2)
    assert sup.request("status")["bots"]["s"]["desired"] == 2  # the local socket, unchanged
    bob = wait_until(lambda: len(remote_events(sup, "bob")) >= 2 and remote_events(sup, "bob"))
    assert [(e["cmd"], e["outcome"], e["role"]) for e in bob] == [
        ("status", "accepted", "read"),
        ("scale", "forbidden", "read"),
    ]
    alice = wait_until(
        lambda: len(remote_events(sup, "alice")) >= 2 and remote_events(sup, "alice")
    )
    assert [(e["cmd"], e["outcome"]) for e in alice] == [
        ("shutdown", "forbidden"),
        ("scale", "accepted"),
    ]
    assert alice[1]["bot"] == "s"
    assert alice[1]["count"] == 2


def test_an_unlisted_key_is_refused_before_any_command(
    sup: Supervisor, keys: dict[str, tuple[str, Path]]
) -> None:
    """ZAP refuses eve's key during the handshake: the client is told so, no request of hers
    reaches the commands (no audit event), and the refusal is counted."""
    _, as_client = start_remote(sup, keys)
    with pytest.raises(UnreachableError, match="refused this client's key"):
        remote.request(as_client["eve"], "status", {}, 10.0)
    assert remote_events(sup, "eve") == []
    stats = sup.request("status")["supervisor"]["remote"]
    assert stats["refused_keys"] >= 1
    assert stats["requests"] == 1  # bob's ping from start_remote, nothing of eve's


def test_limits_hold_and_a_stalled_handshake_stalls_nothing(
    sup: Supervisor, keys: dict[str, tuple[str, Path]]
) -> None:
    """A peer that opens TCP and stops mid-greeting, a frame over the size limit and a flood
    of requests: the local socket and other clients keep answering; the flood is refused
    `rate_limited` beyond the burst."""
    endpoint, as_client = start_remote(sup, keys, "remote_rate_per_s = 0.5\nremote_burst = 3")
    port = int(endpoint.rsplit(":", 1)[1])
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        for s in stalled:
            s.sendall(b"\xff\x00\x00\x00")  # the first bytes of a ZMTP greeting, then nothing
        assert sup.request("ping", timeout_s=5.0)["pid"] == sup.pid
        assert remote.request(as_client["carol"], "ping", {}, 10.0)["pid"] == sup.pid
        carol = as_client["carol"]
        raw = curve.request(
            carol.endpoint, carol.server_key, carol.key_file, b"\xc1 junk", 10.0, 1 << 20
        )
        assert protocol.decode_reply(raw).error_code == "bad_request"
        with pytest.raises(UnreachableError):  # libzmq drops the connection of this frame
            remote.request(as_client["carol"], "status", {"bot": "x" * 100_000}, 3.0)
        codes = []
        for _ in range(8):
            try:
                remote.request(as_client["alice"], "ping", {}, 10.0)
                codes.append("ok")
            except CommandError as e:
                codes.append(e.code)
        assert codes[:3] == ["ok"] * 3
        assert codes.count("rate_limited") >= 4
        assert remote.request(as_client["bob"], "ping", {}, 10.0)  # a bucket per client
    finally:
        for s in stalled:
            s.close()
    counters = sup.request("status")["supervisor"]["remote"]
    assert counters["rate_limited"] >= 4
    assert counters["bad_frames"] == 1
    assert len(sup.events("remote_rate_limited")) == 1  # one event per streak, not per request


def test_cli_status_across_hosts_merges_and_says_who_is_down(
    sup: Supervisor, keys: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    """`status --hosts` asks all at once: one table with a host column, the host that does
    not answer is named unreachable and the exit code is 3; --json merges; --host scales."""
    endpoint, _ = start_remote(sup, keys)
    down = f"tcp://127.0.0.1:{free_port()}"  # nothing listens: refused, said at once
    silent = socket.socket()  # takes the TCP connection and never speaks: the whole timeout
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    mute = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
    path = hosts_file(
        tmp_path / "hosts.toml",
        {
            "web1": (endpoint, keys["server"][0], keys["alice"][1]),
            "web2": (down, keys["server"][0], keys["alice"][1]),
            "web3": (mute, keys["server"][0], keys["alice"][1]),
        },
    )
    env = os.environ | {hostsfile.ENV_VAR: str(path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "supervisor", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)

    table = cli("status", "--hosts", "web1,web2")
    assert table.returncode == 3, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0][:3] == ["HOST", "BOT", "STATE"]
    assert rows[1][:3] == ["web1", "s", "running"]
    assert rows[2][:3] == ["web2", "-", "unreachable"]
    merged = json.loads(cli("status", "--all", "--json").stdout)
    silent.close()
    assert merged["hosts"]["web1"]["bots"]["s"]["running"] == 1
    assert "refused the connection" in merged["unreachable"]["web2"]
    assert "did not answer within 5s" in merged["unreachable"]["web3"]
    scaled = cli("--host", "web1", "scale", "s", "2")
    assert scaled.returncode == 0, scaled.stderr
    assert "1 -> 2" in scaled.stdout
    sup.wait_running("s", 2)
    assert cli("status", "--hosts", "web1").returncode == 0
    unknown = cli("--host", "nope", "status")
    assert unknown.returncode == 2
    assert "hosts.nope" in unknown.stderr


def test_top_across_hosts_redraws_one_table(
    sup: Supervisor, keys: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    """`top --hosts` keeps redrawing the merged table, the host that is down included."""
    endpoint, _ = start_remote(sup, keys)
    down = f"tcp://127.0.0.1:{free_port()}"
    path = hosts_file(
        tmp_path / "hosts.toml",
        {
            "web1": (endpoint, keys["server"][0], keys["bob"][1]),
            "web2": (down, keys["server"][0], keys["bob"][1]),
        },
    )
    cmd = [sys.executable, "-m", "supervisor", "top", "--all", "--interval", "0.1"]
    env = os.environ | {hostsfile.ENV_VAR: str(path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    screen = b""
    try:
        deadline = time.monotonic() + 90
        while screen.count(b"\x1b[2J") < 3 and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                screen += os.read(proc.stdout.fileno(), 65536)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert screen.count(b"\x1b[2J") >= 3
    frame = screen.split(b"\x1b[2J")[-2].decode()
    assert "2 hosts" in frame
    assert [line.split()[:3] for line in frame.splitlines() if line.startswith("web")][:2] == [
        ["web1", "s", "running"],
        ["web2", "-", "unreachable"],
    ]
