"""The SDK names the endpoint and the errno, once, when the worker socket is out of reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.sdk import reach


def test_a_missing_socket_is_named_with_its_errno(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One stderr line with the address and ENOENT; True so the caller knows."""
    address = f"ipc://{tmp_path}/workers"
    assert reach.warn_unreachable(address)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert address in err
    assert "ENOENT" in err


def test_a_reachable_socket_and_other_transports_say_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing, writable path (a file stands in for the socket) and tcp:// pass."""
    (tmp_path / "workers").touch()
    assert not reach.warn_unreachable(f"ipc://{tmp_path}/workers")
    assert not reach.warn_unreachable("tcp://127.0.0.1:5555")
    assert capsys.readouterr().err == ""


def test_the_error_of_stat_comes_back(tmp_path: Path) -> None:
    """stat's own error comes back (here ENOTDIR: a file where a directory should be)."""
    (tmp_path / "plain").touch()
    error = reach.problem(f"ipc://{tmp_path}/plain/workers")
    assert isinstance(error, NotADirectoryError)
