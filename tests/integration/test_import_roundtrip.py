"""`supervisor import` round trip: one supervisord config of 5 programs (numprocs, environment,
a [group:x], an [include]) run by a real supervisord 4.3 and, imported, by us; the same
processes come up (programs, counts, per-process environment and cwd, read from /proc).

supervisord is installed into a throwaway venv as bench/baselines/install.sh does (or taken
from bench/.baselines when that script has run); the test skips, saying why, when pip
cannot install it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.harness import REPO, Supervisor, wait_until

REQUIREMENT = "supervisor==4.3.*"  # as bench/baselines/install.sh pins it
BASELINE = REPO / "bench" / ".baselines" / "supervisord"

MAIN = """\
[supervisord]
nodaemon = true
logfile = %(here)s/supervisord.log
pidfile = %(here)s/supervisord.pid
childlogdir = %(here)s/childlogs

[unix_http_server]
file = %(here)s/supervisord.sock

[program:web]
command = sleep 601
directory = %(here)s/web
environment = APP_ENV="production",GREETING="hello, world",NAME=%(program_name)s

[program:queue]
command = sleep 602
process_name = %(program_name)s_%(process_num)02d
numprocs = 3
directory = /tmp
environment = QUEUE_HOME="%(ENV_HOME)s",QUEUE_GROUP="%(group_name)s"

[program:cron]
command = sh -c "exec sleep 603"

[group:backend]
programs = web,queue

[include]
files = conf.d/*.conf
"""

INCLUDED = """\
[program:mailer]
command = sleep 604
numprocs = 2
process_name = mailer-%(process_num)d
directory = %(here)s
environment = MAILER="smtp://127.0.0.1:25"

[program:reports]
command = sleep 605
environment = REPORTS="on",EMPTY=""
"""

# Each program runs a command of its own: that is how a process is told to be whose.
PROGRAMS = {
    ("sleep", "601"): "web",
    ("sleep", "602"): "queue",
    ("sleep", "603"): "cron",
    ("sleep", "604"): "mailer",
    ("sleep", "605"): "reports",
}
COUNTS = {"web": 1, "queue": 3, "cron": 1, "mailer": 2, "reports": 1}

Process = tuple[str, tuple[tuple[str, str], ...]]  # (cwd, environment added to the parent's)


@pytest.fixture(scope="module")
def supervisord(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The supervisord 4.3 binary, in a venv of its own (our package imports as `supervisor`
    too, so it cannot share ours)."""
    stamp = BASELINE / ".installed"
    if stamp.exists() and stamp.read_text().strip() == REQUIREMENT:
        return BASELINE / "bin" / "supervisord"
    home = tmp_path_factory.mktemp("supervisord-venv")
    venv.create(home, with_pip=True)
    pip = [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    try:
        subprocess.run(
            [*pip, "--disable-pip-version-check", REQUIREMENT],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        lines = (getattr(e, "stderr", "") or "").strip().splitlines() or [str(e)]
        pytest.skip(f"cannot install {REQUIREMENT}: {lines[-1]}")
    return home / "bin" / "supervisord"


def base_env() -> dict[str, str]:
    """The environment both supervisors start with (none of our SUPERVISOR_ variables)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}


def observe(pid: int, parent_env: dict[str, str]) -> Process:
    """A process's cwd and what its environment adds to or changes in the parent's, from
    /proc; the supervisors' own SUPERVISOR_* variables aside."""
    cwd = os.readlink(f"/proc/{pid}/cwd")
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    added = {
        k: v for k, v in env.items() if not k.startswith("SUPERVISOR_") and parent_env.get(k) != v
    }
    return cwd, tuple(sorted(added.items()))


def process_name(pid: int) -> str:
    """The name supervisord gave a process (it tells each in $SUPERVISOR_PROCESS_NAME)."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if item.startswith(b"SUPERVISOR_PROCESS_NAME="):
            return item.split(b"=", 1)[1].decode()
    return ""


def program_of(proc: psutil.Process) -> str | None:
    with contextlib.suppress(psutil.Error):
        return PROGRAMS.get(tuple(proc.cmdline()))  # type: ignore[call-overload]
    return None


def by_program(found: dict[int, str], parent_env: dict[str, str]) -> dict[str, list[Process]]:
    table: dict[str, list[Process]] = {}
    for pid, program in found.items():
        table.setdefault(program, []).append(observe(pid, parent_env))
    return {program: sorted(processes) for program, processes in table.items()}


@contextlib.contextmanager
def supervisord_running(binary: Path, directory: Path) -> Iterator[dict[int, str]]:
    """supervisord on directory/supervisord.conf until every program's processes run; yields
    {pid: program}. Afterwards supervisord and every child are gone."""
    proc = subprocess.Popen(
        [str(binary), "-c", str(directory / "supervisord.conf")],
        cwd=directory, env=base_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    seen: dict[int, float] = {}

    def children() -> dict[int, str] | None:
        if proc.poll() is not None:
            log = directory / "supervisord.log"
            raise AssertionError(f"supervisord exited: {log.read_text() if log.exists() else ''}")
        found = {}
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                seen[child.pid] = child.create_time()
            if (program := program_of(child)) is not None:
                found[child.pid] = program
        return found if len(found) == sum(COUNTS.values()) else None

    try:
        yield wait_until(children, timeout_s=30, what="supervisord's 8 processes")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for pid, created in seen.items():  # none should be left; if one is, end it
            with contextlib.suppress(psutil.Error):
                leftover = psutil.Process(pid)
                if leftover.create_time() == created:
                    leftover.kill()
                    leftover.wait(timeout=10)


def write_sources(directory: Path) -> Path:
    (directory / "web").mkdir()
    (directory / "childlogs").mkdir()
    (directory / "conf.d").mkdir()
    (directory / "conf.d" / "more.conf").write_text(INCLUDED)
    main = directory / "supervisord.conf"
    main.write_text(MAIN)
    return main


@pytest.mark.timeout(900)  # the first run installs supervisord (pip, about a minute)
def test_the_same_processes_as_supervisord(sup: Supervisor, supervisord: Path) -> None:
    """Imported, checked and run by us, the config starts the processes supervisord starts
    from it: the same programs, as many of each, each with the same added environment and
    the same working directory."""
    source = write_sources(sup.dir)
    parent_env = base_env()
    imported = subprocess.run(
        [sys.executable, "-m", "supervisor", "import", str(source), "-o", "-"],
        capture_output=True, text=True, check=False, cwd=sup.dir, timeout=60, env=parent_env,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    sup.configure(imported.stdout)  # our [supervisor] table (run_dir), then the bots
    checked = sup.cli("check")
    assert checked.returncode == 0, checked.stderr

    with supervisord_running(supervisord, sup.dir) as found:
        theirs = by_program(found, parent_env)
        their_queue = sorted(process_name(p) for p, program in found.items() if program == "queue")
    assert {p: len(v) for p, v in theirs.items()} == COUNTS

    sup.start(env=parent_env)
    ours_pids: dict[int, str] = {}
    for bot, count in COUNTS.items():
        ours_pids |= {pid: bot for pid in sup.wait_running(bot, count).values()}
    ours = by_program(ours_pids, parent_env)

    assert set(sup.status()["bots"]) == set(COUNTS)
    assert ours == theirs
    # numprocs = 3 named queue_00..02 there is bot queue's slots 0..2 here (BOT:SLOT).
    assert their_queue == ["queue_00", "queue_01", "queue_02"]
    assert sorted(w["slot"] for w in sup.bot("queue")["workers"]) == [0, 1, 2]
    # What the comparison covers: supervisord really set these, and so did we.
    assert theirs["web"] == [
        (
            str(sup.dir / "web"),
            (("APP_ENV", "production"), ("GREETING", "hello, world"), ("NAME", "web")),
        )
    ]
    assert theirs["queue"][0] == (
        "/tmp",
        (("QUEUE_GROUP", "backend"), ("QUEUE_HOME", parent_env["HOME"])),
    )
    assert theirs["mailer"][0][0] == str(sup.dir / "conf.d")
    assert theirs["reports"] == [(str(sup.dir), (("EMPTY", ""), ("REPORTS", "on")))]
