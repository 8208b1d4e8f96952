"""Dashboard actions: which command each action runs, and the tokens table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from supervisor.config.fields import Table
from supervisor.plugins.monitor import actions


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        (
            {"action": "restart_worker", "bot": "b", "worker": 2},
            ("restart", {"bot": "b", "worker": 2}),
        ),
        ({"action": "restart", "bot": "b"}, ("restart", {"bot": "b"})),
        ({"action": "stop", "bot": "b"}, ("stop", {"bot": "b"})),
        ({"action": "start", "bot": "b"}, ("start", {"bot": "b"})),
        ({"action": "pin", "bot": "b", "count": 4}, ("scale", {"bot": "b", "count": 4})),
        ({"action": "unpin", "bot": "b"}, ("scale", {"bot": "b", "count": "auto"})),
        ({"action": "shutdown", "bot": "b"}, "unknown action"),
        ({"action": "restart"}, "bot: expected"),
        ({"action": "restart_worker", "bot": "b", "worker": "1"}, "worker: expected"),
        ({"action": "restart_worker", "bot": "b", "worker": True}, "worker: expected"),
        ({"action": "pin", "bot": "b", "count": 2.5}, "count: expected"),
    ],
)
def test_action_to_command(request_body: dict[str, Any], expected: Any) -> None:
    """Each action maps to one control command with checked arguments; the rest are refused."""
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            actions.command_for(request_body)
    else:
        assert actions.command_for(request_body) == expected


def _tokens(
    tmp_path: Path, raw: Any, mode: int = 0o600, secret: str = "s" * 20
) -> tuple[Any, list[str]]:
    path = tmp_path / "t.token"
    path.write_text(secret)
    os.chmod(path, mode)
    problems: list[str] = []
    if isinstance(raw, dict):
        raw = {k: (v | {"token_file": str(path)} if isinstance(v, dict) and "file" in v else v)
               for k, v in raw.items()}  # fmt: skip
        for v in raw.values():
            if isinstance(v, dict):
                v.pop("file", None)
    table = Table({"tokens": raw}, "plugins.monitor", problems)
    return actions.take_tokens(table), problems


def test_tokens_are_read_from_their_files(tmp_path: Path) -> None:
    tokens, problems = _tokens(tmp_path, {"ops": {"role": "operate", "file": 1}})
    assert problems == []
    assert tokens == (actions.Token("ops", "operate", "s" * 20),)


@pytest.mark.parametrize(
    ("raw", "mode", "secret", "problem"),
    [
        ({"ops": {"role": "root", "file": 1}}, 0o600, "s" * 20, "plugins.monitor.tokens.ops.role:"),
        ({"ops": {"file": 1}}, 0o600, "s" * 20, "plugins.monitor.tokens.ops.role: required"),
        (
            {"ops": {"role": "read"}},
            0o600,
            "s" * 20,
            "plugins.monitor.tokens.ops.token_file: required",
        ),
        (
            {"ops": {"role": "read", "file": 1}},
            0o644,
            "s" * 20,
            "plugins.monitor.tokens.ops.token_file: ",
        ),
        (
            {"ops": {"role": "read", "file": 1}},
            0o600,
            "short",
            "plugins.monitor.tokens.ops.token_file: ",
        ),
        (
            {"ops": {"role": "read", "file": 1, "x": 1}},
            0o600,
            "s" * 20,
            "plugins.monitor.tokens.ops.x: unknown",
        ),
        ("ops", 0o600, "s" * 20, "plugins.monitor.tokens: expected a table"),
    ],
)
def test_token_mistakes_name_their_key_path(
    tmp_path: Path, raw: Any, mode: int, secret: str, problem: str
) -> None:
    _, problems = _tokens(tmp_path, raw, mode, secret)
    assert any(p.startswith(problem) for p in problems), problems


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [("127.0.0.1:9321", True), ("localhost:1", True), ("[::1]:9", True), ("0.0.0.0:9321", False),
     ("10.0.0.5:9321", False)],
)  # fmt: skip
def test_loopback(listen: str, loopback: bool) -> None:
    assert actions.is_loopback(listen) is loopback
