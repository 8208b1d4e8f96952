"""Shell completion's candidates for what needs no supervisor: commands, flags, choices, files.

The parser is the CLI's own, so these also pin that completion follows it. Bot names and
slots come from a running supervisor: tests/integration/test_completion.py.
"""

from __future__ import annotations

import pytest

from supervisor.cli import completion, main
from supervisor.cli.completion import FILES

CASES = [
    (["re"], ["reload", "restart"]),
    (["--"], ["--config", "--help", "--host", "--version"]),
    (["-c", ""], [FILES]),
    (["-c", "x.toml", "sta"], ["start", "status"]),
    (["restart", "--"], ["--config", "--help", "--host", "--rolling", "--worker"]),
    (["restart", "--rolling", "--"], ["--config", "--help", "--host", "--worker"]),
    (["status", "--j"], ["--json"]),
    (["import", ""], [FILES]),
    (["import", "x", "--from", ""], ["supervisord", "circus", "pm2", "procfile"]),
    (["import", "x", "--from", "p"], ["pm2", "procfile"]),
    (["import", "x", "-o", ""], [FILES]),
    (["completion", ""], ["bash", "zsh", "fish"]),
    (["completion", "f"], ["fish"]),
    (["scale", "echo", ""], ["auto"]),
    (["scale", "echo", "3", ""], []),
    (["logs", "echo", "-n", ""], []),  # a number: nothing to offer
    (["shutdown", ""], []),
]


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_candidates(words: list[str], expected: list[str]) -> None:
    """What Tab offers after words (the last one is the word being completed)."""
    assert completion.complete(main._parser(), words, "/nonexistent/supervisor.toml") == expected


def test_every_command_is_offered() -> None:
    """The command list is the parser's, the hidden __complete aside."""
    offered = completion.complete(main._parser(), [""], "/nonexistent/supervisor.toml")
    assert "completion" in offered
    assert "import" in offered
    assert "__complete" not in offered


def test_the_shells_agree() -> None:
    assert main.COMPLETION_SHELLS == completion.SHELLS


@pytest.mark.parametrize("shell", completion.SHELLS)
def test_each_script_calls_back_into_the_cli(shell: str) -> None:
    """Every script asks `__complete` and handles the file-name marker."""
    text = completion.script(shell)
    assert "__complete" in text
    assert FILES in text
