"""Shell completion against a running supervisor: real bash drives the generated script and
gets the running bots and their worker slots back; zsh and fish accept theirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import Supervisor

SUPERVISOR = Path(sys.executable).parent / "supervisor"  # the venv's console script
FLEET = """
[bots.alpha]
command = ["sleep", "600"]
workers = 3
[bots.beta]
command = ["sleep", "600"]
"""


def running(sup: Supervisor) -> Supervisor:
    sup.configure(FLEET)
    sup.start()
    sup.wait_running("alpha", 3)
    sup.wait_running("beta", 1)
    # From here on the file names other bots: what Tab offers must come from the running
    # supervisor, not from a re-read of the file.
    sup.configure('[bots.gamma]\ncommand = ["sleep", "600"]\n')
    return sup


def bash_complete(sup: Supervisor, *words: str) -> list[str]:
    """Source `supervisor completion bash`, set COMP_WORDS/COMP_CWORD as bash would for
    `supervisor -c CONFIG WORDS...` and call the completion function."""
    script = subprocess.run(
        [SUPERVISOR, "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout
    line = [str(SUPERVISOR), "-c", str(sup.config_path), *words]
    quoted = " ".join(f"'{w}'" for w in line)
    program = (
        f"{script}\n"
        "complete -p supervisor >/dev/null || exit 9\n"  # the function is registered
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(line) - 1}\n"
        "_supervisor_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=sup.dir,
    )
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_commands_bots_and_slots(sup: Supervisor) -> None:
    """Tab after a command gives the running bots; after --worker, the bot's slots; a prefix
    narrows them; commands and flags come from the parser."""
    running(sup)
    assert bash_complete(sup, "restart", "") == ["alpha", "beta"]
    assert bash_complete(sup, "status", "b") == ["beta"]
    assert bash_complete(sup, "restart", "alpha", "--worker", "") == ["0", "1", "2"]
    assert bash_complete(sup, "stop", "beta", "--worker", "") == ["0"]
    assert bash_complete(sup, "resta") == ["restart"]
    assert bash_complete(sup, "restart", "alpha", "--r") == ["--rolling"]
    sup.cli("scale", "alpha", "5")
    sup.wait_running("alpha", 5)
    assert bash_complete(sup, "logs", "alpha", "--worker", "") == ["0", "1", "2", "3", "4"]


def test_bash_completes_file_names(sup: Supervisor) -> None:
    """Where a file goes (`import FILE`), bash offers file names."""
    (sup.dir / "procfile.sample").write_text("web: sleep 1\n")
    assert bash_complete(sup, "import", "procfile.s") == ["procfile.sample"]


def test_without_a_supervisor_bot_names_come_from_the_file(sup: Supervisor) -> None:
    """No supervisor runs: the config file's bots are offered, and no slots."""
    sup.configure(FLEET)
    assert bash_complete(sup, "start", "") == ["alpha", "beta"]
    assert bash_complete(sup, "start", "alpha", "--worker", "") == []


def test_the_completion_path_imports_no_pyzmq(sup: Supervisor) -> None:
    """`supervisor __complete` asks the running supervisor over the CLI's own ZMTP client:
    pyzmq is never imported (it would cost a Tab ~30 ms)."""
    running(sup)
    code = (
        "import sys\n"
        "from supervisor.cli.main import main\n"
        f"main(['__complete', '-c', {str(sup.config_path)!r}, 'restart', 'alpha', '--worker', ''])\n"
        "print('zmq' in sys.modules, 'zmq.asyncio' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.split() == ["0", "1", "2", "False", "False"]


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_zsh_accepts_its_script_and_registers_the_function(tmp_path: Path) -> None:
    zsh = _shell("zsh")
    script = tmp_path / "_supervisor"
    script.write_text(subprocess.check_output([SUPERVISOR, "completion", "zsh"], text=True))
    subprocess.run([zsh, "-n", str(script)], check=True, timeout=30)
    program = f"autoload -U compinit; compinit -u -D; source {script}; print $_comps[supervisor]"
    out = subprocess.run(
        [zsh, "-f", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=os.environ | {"HOME": str(tmp_path)},
    )
    assert out.stdout.strip() == "_supervisor"


def test_fish_completes_the_running_bots(sup: Supervisor) -> None:
    """fish sources its script and `complete -C` (what Tab shows) lists the running bots."""
    fish = _shell("fish")
    script = subprocess.check_output([SUPERVISOR, "completion", "fish"], text=True)
    subprocess.run([fish, "--no-execute", "-c", script], check=True, timeout=30)
    running(sup)
    program = (
        f"{script}\n"
        f"complete -C 'supervisor -c {sup.config_path} restart '\n"
        f"complete -C 'supervisor -c {sup.config_path} restart alpha --worker '\n"
    )
    out = subprocess.run(
        [fish, "--no-config", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=os.environ | {"PATH": f"{SUPERVISOR.parent}:{os.environ['PATH']}"},
        cwd=sup.dir,
    )
    assert out.stdout.split() == ["alpha", "beta", "0", "1", "2"]
