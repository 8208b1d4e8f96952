"""The remote keys of [supervisor], the roles table, the rate limit, and the CLI's hosts file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor.cli import hosts
from supervisor.config import model, roles
from supervisor.errors import ConfigError
from supervisor.policy.ratelimit import TokenBucket

KEY_A = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
KEY_B = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"


@pytest.mark.parametrize(
    ("role", "cmd", "allowed"),
    [
        ("read", "status", True),
        ("read", "ping", True),
        ("read", "events", True),
        ("read", "analyze", True),
        ("read", "scale", False),
        ("read", "restart", False),
        ("operate", "status", True),
        ("operate", "scale", True),
        ("operate", "start", True),
        ("operate", "stop", True),
        ("operate", "restart", True),
        ("operate", "reload", False),
        ("operate", "shutdown", False),
        ("admin", "reload", True),
        ("admin", "shutdown", True),
        ("admin", "scale", True),
        ("admin", "some_future_command", True),
        ("operate", "some_future_command", False),  # unknown commands need admin
        ("", "status", False),
        ("root", "status", False),
    ],
)
def test_role_table(role: str, cmd: str, allowed: bool) -> None:
    """Each role allows its commands and those of the roles below it, nothing more."""
    assert roles.allows(role, cmd) is allowed
    assert (roles.refusal(role, cmd) is None) is allowed


def test_a_refusal_names_the_role_needed() -> None:
    """The forbidden message tells the operator which role would do."""
    assert (
        roles.refusal("read", "scale") == "'scale' needs the operate role; this client has 'read'"
    )
    assert "needs the admin role" in (roles.refusal("operate", "shutdown") or "")


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0, 0, 0, 0], [True, True, True, False]),  # the burst, then refused
        ([0, 0, 0, 0, 0.5, 1.0], [True, True, True, False, False, True]),  # 1 per second back
        ([0, 0, 0, 100, 100, 100, 100], [True] * 6 + [False]),  # refills to the burst, no more
        ([5, 4, 4, 4], [True, True, True, False]),  # a clock going back adds nothing
    ],
)
def test_token_bucket(times: list[float], expected: list[bool]) -> None:
    """Average rate_per_s, bursts of up to burst."""
    bucket = TokenBucket(rate_per_s=1.0, burst=3, now=times[0])
    assert [bucket.take(t) for t in times] == expected


def _config(tmp_path: Path, supervisor: str, secret_mode: int = 0o600) -> Path:
    secret = tmp_path / "server.key_secret"
    secret.write_text('curve\n    secret-key = "x"\n')
    os.chmod(secret, secret_mode)
    path = tmp_path / "supervisor.toml"
    path.write_text(f"[supervisor]\n{supervisor}\n[bots.a]\ncommand = 'true'\n")
    return path


def test_remote_parses(tmp_path: Path) -> None:
    """remote, its key file (relative to the config) and the clients become typed settings."""
    path = _config(
        tmp_path,
        'remote = "tcp://0.0.0.0:7320"\nremote_key_file = "server.key_secret"\n'
        f"remote_rate_per_s = 5\n[supervisor.clients.alice]\nkey = '{KEY_A}'\nrole = 'operate'",
    )
    remote = model.load(path).supervisor.remote
    assert remote is not None
    assert remote.endpoint == "tcp://0.0.0.0:7320"
    assert remote.key_file == tmp_path / "server.key_secret"
    assert (remote.rate_per_s, remote.burst) == (5.0, 40)
    assert remote.clients["alice"].key == KEY_A
    assert remote.clients["alice"].role == "operate"


def test_remote_is_off_by_default(tmp_path: Path) -> None:
    assert model.load(_config(tmp_path, "")).supervisor.remote is None


_REMOTE = 'remote = "tcp://127.0.0.1:7320"\nremote_key_file = "server.key_secret"\n'


@pytest.mark.parametrize(
    ("text", "mode", "problem"),
    [
        (
            'remote = "http://x:1"\nremote_key_file = "server.key_secret"',
            0o600,
            'supervisor.remote: expected "tcp://HOST:PORT"',
        ),
        ('remote = "tcp://x:1"', 0o600, "supervisor.remote_key_file: required with remote"),
        (_REMOTE, 0o644, "supervisor.remote_key_file: "),
        (_REMOTE, 0o600, "supervisor.clients: remote is set but no client is listed"),
        (
            _REMOTE + "[supervisor.clients.a]\nkey = 'short'\nrole = 'read'",
            0o600,
            "supervisor.clients.a.key: expected a CURVE public key",
        ),
        (
            _REMOTE + f"[supervisor.clients.a]\nkey = '{KEY_A}'\nrole = 'root'",
            0o600,
            "supervisor.clients.a.role: expected one of",
        ),
        (
            _REMOTE + f"[supervisor.clients.a]\nkey = '{KEY_A}'",
            0o600,
            "supervisor.clients.a.role: required",
        ),
        (
            _REMOTE + f"[supervisor.clients.a]\nkey = '{KEY_A}'\nrole = 'read'\nrol = 1",
            0o600,
            'supervisor.clients.a.rol: unknown key; did you mean "role"?',
        ),
        (
            _REMOTE + f"[supervisor.clients.a]\nkey = '{KEY_A}'\nrole = 'read'\n"
            f"[supervisor.clients.b]\nkey = '{KEY_A}'\nrole = 'admin'",
            0o600,
            "supervisor.clients.b.key: the same key as client a",
        ),
        (
            f"[supervisor.clients.a]\nkey = '{KEY_A}'\nrole = 'read'",
            0o600,
            "supervisor.clients: set only with remote",
        ),
    ],
)
def test_remote_mistakes_name_their_key_path(
    tmp_path: Path, text: str, mode: int, problem: str
) -> None:
    """Each mistake in the remote keys is a problem line starting with its key path."""
    with pytest.raises(ConfigError) as caught:
        model.load(_config(tmp_path, text, mode))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_public_key_file_is_not_a_secret_key(tmp_path: Path) -> None:
    """Pointing remote_key_file at NAME.key (the public half) is caught by `check`."""
    path = _config(tmp_path, _REMOTE + f"[supervisor.clients.a]\nkey = '{KEY_A}'\nrole = 'read'")
    (tmp_path / "server.key_secret").write_text('curve\n    public-key = "x"\n')
    with pytest.raises(ConfigError, match="holds no secret key"):
        model.load(path)


def test_a_secret_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    """The server's secret key file must be 0600 (or stricter)."""
    with pytest.raises(ConfigError, match=r"readable by others \(mode 644\); chmod 600 it"):
        model.load(_config(tmp_path, _REMOTE, 0o644))


# ---------------------------------------------------------------- the CLI's hosts file


def test_hosts_file_parses(tmp_path: Path) -> None:
    """Hosts get their endpoint, server key and key file (the top-level one by default)."""
    parsed = hosts.parse_hosts(
        {
            "key_file": "alice.key_secret",
            "hosts": {
                "web1": {"endpoint": "tcp://10.0.0.5:7320", "server_key": KEY_A},
                "web2": {
                    "endpoint": "tcp://[::1]:7320",
                    "server_key": KEY_B,
                    "key_file": "/etc/k/ops.key_secret",
                },
            },
        },
        tmp_path,
    )
    assert parsed == {
        "web1": hosts.Host("web1", "tcp://10.0.0.5:7320", KEY_A, tmp_path / "alice.key_secret"),
        "web2": hosts.Host("web2", "tcp://[::1]:7320", KEY_B, Path("/etc/k/ops.key_secret")),
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({}, "hosts: no host listed"),
        ({"hosts": {"a": {"server_key": KEY_A, "key_file": "k"}}}, "hosts.a.endpoint: required"),
        (
            {"hosts": {"a": {"endpoint": "tcp://h:1", "key_file": "k"}}},
            "hosts.a.server_key: required",
        ),
        (
            {"hosts": {"a": {"endpoint": "tcp://h:1", "server_key": KEY_A}}},
            "hosts.a.key_file: required",
        ),
        (
            {"hosts": {"a": {"endpoint": "h:1", "server_key": KEY_A, "key_file": "k"}}},
            'hosts.a.endpoint: expected "tcp://HOST:PORT"',
        ),
        (
            {"hosts": {"a": {"endpoint": "tcp://h:1", "server_key": "x", "key_file": "k"}}},
            "hosts.a.server_key: expected a CURVE public key",
        ),
        (
            {"hosts": {"a": {"endpoint": "tcp://h:1", "server_key": KEY_A, "key_fil": "k"}}},
            'hosts.a.key_fil: unknown key; did you mean "key_file"?',
        ),
        ({"hosts": {"a": 3}}, "hosts.a: expected a table"),
        ({"host": {}}, "host: unknown key"),
    ],
)
def test_hosts_file_mistakes_name_their_key_path(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        hosts.parse_hosts(raw, Path("/x"))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_hosts_path_env_var_overrides_the_default() -> None:
    assert hosts.hosts_path({hosts.ENV_VAR: "/tmp/h.toml"}) == Path("/tmp/h.toml")
    assert hosts.hosts_path({}) == Path("~/.config/supervisor/hosts.toml").expanduser()


def _status(*bots: tuple[str, str, int]) -> dict[str, object]:
    return {
        "bots": {
            name: {
                "state": state, "ready": n, "desired": n, "mode": "fixed", "restarts": 0,
                "workers": [{"pid": 100 + i} for i in range(n)],
            }
            for name, state, n in bots
        }
    }  # fmt: skip


@pytest.mark.parametrize(
    ("results", "healthy", "rows"),
    [
        (
            {"a": _status(("echo", "running", 2)), "b": _status(("echo", "running", 1))},
            True,
            [["a", "echo", "running", "2/2"], ["b", "echo", "running", "1/1"]],
        ),
        (
            {"a": _status(("echo", "running", 2)), "b": "host b did not answer within 5s"},
            False,
            [["a", "echo", "running", "2/2"], ["b", "-", "unreachable", "-"]],
        ),
        (
            {"a": _status(("echo", "failed", 0), ("web", "running", 1))},
            False,
            [["a", "echo", "failed", "0/0"], ["a", "web", "running", "1/1"]],
        ),
        ({"a": _status()}, True, [["a", "-", "no", "bots"]]),
    ],
)
def test_merge_of_many_hosts(
    results: dict[str, dict[str, object] | str], healthy: bool, rows: list[list[str]]
) -> None:
    """One table, a row per host and bot; who did not answer is said, and fails the exit code."""
    merged = hosts.merge_status(results)
    assert hosts.all_running(merged) is healthy
    lines = hosts.format_hosts(merged).splitlines()
    assert lines[0].split()[:4] == ["HOST", "BOT", "STATE", "READY"]
    assert [line.split()[:4] for line in lines[1 : 1 + len(rows)]] == rows
    for host, why in merged["unreachable"].items():
        assert f"{host}: {why}" in lines
    assert set(merged["hosts"]) | set(merged["unreachable"]) == set(results)


def test_pick_names_unknown_hosts() -> None:
    listed = {"a": hosts.Host("a", "tcp://h:1", KEY_A, Path("k"))}
    with pytest.raises(ConfigError, match=r"hosts.b: not in the hosts file \(hosts: a\)"):
        hosts.pick(listed, ["a", "b"])
    assert hosts.split_names("a, b,,a") == ["a", "b"]
