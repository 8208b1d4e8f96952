"""`preload = true`: a bot's workers are forked from a zygote that imported its module once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until

BOT = REPO / "tests" / "bots" / "preloaded.py"


def preloaded(sup: Supervisor, workers: int = 3, extra: str = "") -> str:
    return f"""
[bots.pre]
module = "tests.bots.preloaded:main"
cwd = "{sup.dir}"
preload = true
workers = {workers}
readiness = "sdk"
env = {{ PRELOAD_DIR = "{sup.dir}", PYTHONPATH = "{sup.dir}" }}
{extra}
"""


def copy_bot(sup: Supervisor) -> Path:
    """The bot under the test's own directory, so a test may change it."""
    (sup.dir / "tests" / "bots").mkdir(parents=True)
    for init in ("tests/__init__.py", "tests/bots/__init__.py"):
        (sup.dir / init).write_text("")
    path = sup.dir / "tests" / "bots" / "preloaded.py"
    path.write_text(BOT.read_text())
    return path


def lines(sup: Supervisor, name: str) -> list[list[str]]:
    path = sup.dir / name
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def test_preloaded_workers_are_ready_processes_of_one_import(sup: Supervisor) -> None:
    """Three workers become READY through the SDK as real processes of their own, children
    of the supervisor, each in its own group; the module was imported once, by the zygote."""
    copy_bot(sup)
    sup.configure(preloaded(sup))
    sup.start()
    pids = sup.wait_running("pre", 3)
    assert all(w["ready"] for w in sup.bot("pre")["workers"])
    imports = lines(sup, "imports")
    assert len(imports) == 1
    zygote = int(imports[0][0])
    assert zygote not in pids.values()
    assert pid_alive(zygote)
    for pid in pids.values():
        assert os.getpgid(pid) == pid
        with open(f"/proc/{pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == sup.pid  # ppid
    workers = wait_until(lambda: len(w := lines(sup, "workers")) == 3 and w, what="3 workers")
    assert {int(w[0]) for w in workers} == set(pids.values())
    assert {int(w[1]) for w in workers} == {zygote}  # they inherited the zygote's import
    assert sup.events("zygote_started")


def test_a_killed_preloaded_worker_is_replaced_from_the_same_zygote(sup: Supervisor) -> None:
    """kill -9 of a worker: a new one is forked and READY, and nothing is imported again."""
    copy_bot(sup)
    sup.configure(preloaded(sup, workers=2))
    sup.start()
    before = sup.wait_running("pre", 2)
    os.kill(before[0], signal.SIGKILL)
    wait_until(lambda: sup.pids("pre").get(0) not in (None, before[0]), what="a new worker 0")
    after = sup.wait_running("pre", 2)
    assert after[0] != before[0]
    assert after[1] == before[1]
    assert len(lines(sup, "imports")) == 1


def test_a_dead_zygote_is_reported_and_started_again(sup: Supervisor) -> None:
    """kill -9 of the zygote: an event says so, a new zygote imports the module, and the
    next worker comes from it; the running workers are untouched."""
    copy_bot(sup)
    sup.configure(preloaded(sup, workers=2))
    sup.start()
    before = sup.wait_running("pre", 2)
    zygote = int(lines(sup, "imports")[0][0])
    wait_until(lambda: len(sup.events("zygote_started")) == 1, what="zygote_started")
    os.kill(zygote, signal.SIGKILL)
    exited = wait_until(lambda: sup.events("zygote_exited"), what="zygote_exited")
    assert (exited[0]["pid"], exited[0]["bot"]) == (zygote, "pre")
    wait_until(lambda: len(lines(sup, "imports")) == 2, what="a second zygote's import")
    assert sup.pids("pre") == before
    os.kill(before[1], signal.SIGKILL)
    after = wait_until(
        lambda: (p := sup.pids("pre")).get(1) not in (None, before[1]) and p, what="worker 1"
    )
    second = int(lines(sup, "imports")[1][0])
    assert [int(w[1]) for w in lines(sup, "workers") if int(w[0]) == after[1]] == [second]


def test_a_reload_with_a_changed_module_replaces_the_zygote(sup: Supervisor) -> None:
    """The module's file changes and `restart` runs its new code from a new zygote; a reload
    that changes the bot's spec (its env) replaces the zygote too."""
    path = copy_bot(sup)
    sup.configure(preloaded(sup, workers=2))
    sup.start()
    sup.wait_running("pre", 2)
    path.write_text(path.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    assert sup.cli("restart", "pre").returncode == 0
    wait_until(lambda: [w[2] for w in lines(sup, "workers")][-2:] == ["2", "2"], what="v2")
    sup.wait_running("pre", 2)
    assert [i[1] for i in lines(sup, "imports")] == ["1", "2"]
    wait_until(lambda: sup.events("zygote_replaced"), what="zygote_replaced")
    sup.configure(
        preloaded(sup, workers=2).replace('PYTHONPATH = "', 'COLOUR = "red", PYTHONPATH = "')
    )
    assert sup.cli("reload").returncode == 0
    wait_until(lambda: len(lines(sup, "imports")) == 3, what="a third zygote for the new env")
    sup.wait_running("pre", 2)
    assert not pid_alive(int(lines(sup, "imports")[1][0]))


def test_a_module_that_starts_a_thread_at_import_is_refused(sup: Supervisor) -> None:
    """Forking a threaded zygote would give workers without that thread: the spawn fails
    with an error that says why, and no worker runs."""
    copy_bot(sup)
    sup.configure(
        preloaded(sup, workers=1).replace("PRELOAD_DIR", 'PRELOAD_THREAD = "1", PRELOAD_DIR')
    )
    sup.start()
    failed = wait_until(lambda: sup.events("zygote_failed"), what="zygote_failed")
    assert "started 1 thread(s) at import (import-time)" in failed[0]["error"]
    spawn = wait_until(lambda: sup.events("worker_spawn_failed"), what="worker_spawn_failed")
    assert "thread" in spawn[0]["error"]
    assert lines(sup, "workers") == []


def test_preload_on_a_command_bot_is_a_config_error(tmp_path: Path) -> None:
    """preload only means something for a module bot: `check` names the key, exits 2."""
    config = tmp_path / "supervisor.toml"
    config.write_text(
        f'[supervisor]\nrun_dir = "{tmp_path}/run"\n\n'
        '[bots.cmd]\ncommand = ["sleep", "1"]\npreload = true\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "supervisor", "check", "-c", str(config)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "bots.cmd.preload" in result.stdout + result.stderr
