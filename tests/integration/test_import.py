"""`supervisor import` as a user runs it: a real subprocess writes the file, `supervisor
check` accepts it, and the flags that guard the user's files hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "importers"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args],
        capture_output=True, text=True, check=False, cwd=cwd, timeout=60,
    )  # fmt: skip


def test_import_then_check(tmp_path: Path) -> None:
    """An imported supervisord config (include, group, numprocs) passes `supervisor check`."""
    result = cli("import", str(SAMPLES / "supervisord" / "supervisord.conf"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not converted: supervisord.conf [group:backend] programs = web,queue" in result.stderr
    checked = cli("check", "-c", "supervisor.toml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    for name, workers in (("queue", 3), ("web", 1), ("cron", 1), ("mailer", 2)):
        assert any(
            line.split()[:2] == [name, f"workers={workers}"] for line in checked.stdout.splitlines()
        ), checked.stdout


@pytest.mark.parametrize(
    ("args", "code", "stderr"),
    [
        (["--strict"], 2, "--strict: 4 options have no equivalent; nothing written"),
        (["-o", "exists.toml"], 2, "exists.toml exists; pass --force to overwrite it"),
        (["--from", "procfile"], 2, "ecosystem.json:1: expected NAME: COMMAND, got {"),
    ],
)
def test_import_refuses(tmp_path: Path, args: list[str], code: int, stderr: str) -> None:
    """--strict, an existing output and a wrong --from each exit 2 and write nothing."""
    (tmp_path / "exists.toml").write_text("keep me\n")
    result = cli("import", str(SAMPLES / "pm2" / "ecosystem.json"), *args, cwd=tmp_path)
    assert result.returncode == code
    assert stderr in result.stderr.splitlines()[-1]
    assert (tmp_path / "exists.toml").read_text() == "keep me\n"
    assert not (tmp_path / "supervisor.toml").exists()
