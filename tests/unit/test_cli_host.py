"""`--host` on a command that only works on this host is refused, never silently ignored
(`supervisor --host web1 events` used to stream this host's events)."""

from __future__ import annotations

import pytest

from supervisor.cli import main

LOCAL_ONLY = [["events"], ["logs", "bot"], ["analyze"], ["check"], ["run"], ["keys", "new", "x"]]


@pytest.mark.parametrize("argv", LOCAL_ONLY, ids=lambda a: a[0])
def test_a_local_only_command_refuses_host(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["--host", "web1", *argv]) == 2
    err = capsys.readouterr().err
    assert f"`{argv[0]}` works on this host only" in err
