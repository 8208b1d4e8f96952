"""`supervisor check` finds a bot's program and module as the spawn will, running none of it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from supervisor.cli.main import main
from supervisor.config import model as config
from supervisor.config import spawnable


def package(root: Path) -> Path:
    """pkg/sub/mod.py, where every __init__ writes a marker: running it would show."""
    marker = root / "imported"
    for d in (root / "pkg", root / "pkg" / "sub"):
        d.mkdir(parents=True)
        (d / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write({d.name!r})\n")
    (root / "pkg" / "sub" / "mod.py").write_text(f"open({str(marker)!r}, 'a').write('mod')\n")
    (root / "pkg" / "plain.py").write_text("")
    return marker


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("pkg.sub.mod", ""),
        ("pkg.sub.mod:main", ""),  # the function is not checked: that needs the import
        ("pkg.sub", ""),
        ("pkg.sub.nomod", 'no module "pkg.sub.nomod" can be found in package "pkg.sub"'),
        ("nopkg_xyz.mod", 'no module "nopkg_xyz" can be found from cwd'),
        ("pkg.plain.deeper", '"pkg.plain" is a module, not a package: no "pkg.plain.deeper"'),
        ("json.decoder", ""),  # the interpreter's own paths
        ("sys", ""),  # built in: found by a meta-path finder
    ],
)
def test_module_is_found_without_importing_it(tmp_path: Path, spec: str, problem: str) -> None:
    marker = package(tmp_path)
    found = spawnable.module_problem(spec, tmp_path, {})
    assert found.startswith(problem) if problem else found == ""
    assert not marker.exists(), "a package's __init__ ran"


def test_pythonpath_of_the_bot_is_searched_relative_to_its_cwd(tmp_path: Path) -> None:
    package(tmp_path / "src")
    assert spawnable.module_problem("pkg.sub.mod", tmp_path, {})
    assert spawnable.module_problem("pkg.sub.mod", tmp_path, {"PYTHONPATH": "src"}) == ""


def test_relative_path_entries_are_taken_from_the_bots_cwd(tmp_path: Path) -> None:
    """The worker execs after its chdir, so PATH=bin means the bot's bin/."""
    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert spawnable.executable_problem("tool", tmp_path, {"PATH": "bin"}) == ""
    tool.chmod(tool.stat().st_mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    assert spawnable.executable_problem("tool", tmp_path, {"PATH": "bin"}) == (
        '"tool" is not an executable on PATH'
    )
    assert spawnable.executable_problem("bin/tool", tmp_path, {}) == (
        '"bin/tool" is not an executable file'
    )


def test_check_reports_each_missing_module_as_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = package(tmp_path)
    path = tmp_path / "supervisor.toml"
    path.write_text(
        '[bots.good]\nmodule = "pkg.sub.mod"\n'
        '[bots.bad]\nmodule = "pkg.sub.nomod:main"\n'
        '[bots.worse]\nmodule = "nopkg_xyz"\n'
    )
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        'supervisor: bots.bad.module: no module "pkg.sub.nomod" can be found in package '
        '"pkg.sub" (nothing imported)',
        f'supervisor: bots.worse.module: no module "nopkg_xyz" can be found from cwd {tmp_path} '
        "(nothing imported)",
    ]
    assert not marker.exists()
    (tmp_path / "pkg" / "sub" / "nomod.py").write_text("")
    path.write_text('[bots.good]\nmodule = "pkg.sub.mod"\n[bots.bad]\nmodule = "pkg.sub.nomod"\n')
    assert main(["check", "-c", str(path)]) == 0
    assert not marker.exists()


def test_numbers_in_env_are_written_as_python_writes_them(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.toml"
    path.write_text('[bots.a]\ncommand = ["true"]\nenv = { N = 3, F = 0.5, E = 1e3, S = "x" }\n')
    assert dict(config.load(path).bots["a"].env) == {"N": "3", "F": "0.5", "E": "1000.0", "S": "x"}


def test_env_file_with_a_nul_is_refused_like_env(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_bytes(b"A=x\x00y\n")
    path = tmp_path / "supervisor.toml"
    path.write_text('[bots.a]\ncommand = ["true"]\nenv_file = "a.env"\n')
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert caught.value.problems == [
        f"bots.a.env_file: {tmp_path}/a.env:1: a value cannot contain a NUL character"
    ]


def test_the_default_ceiling_allows_a_big_fleet(tmp_path: Path) -> None:
    path = tmp_path / "supervisor.toml"
    path.write_text('[bots.a]\ncommand = ["true"]\nworkers = 2000\n')
    assert config.load(path).bots["a"].workers == 2000
    assert os.path.exists("/proc/sys/kernel/pid_max")
