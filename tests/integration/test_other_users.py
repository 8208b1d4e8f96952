"""SDK bots that run as another user under a root supervisor (issue 21).

The project's interpreter lives in root's home (0700), which `nobody` cannot
read: these workers run on a venv of Debian's /usr/bin/python3 built under
/tmp once per session, with pyzmq and msgpack from the local index and a
world-readable copy of the worktree's `supervisor` and `tests/bots`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.harness import REPO, Supervisor, wait_until

SYSTEM_PYTHON = Path("/usr/bin/python3")
FIRST, SECOND = "nobody", "daemon"  # two unprivileged users every Debian has

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running workers as others needs root")


@dataclass(frozen=True)
class ForeignPython:
    """An interpreter and sources that any user can read."""

    python: Path
    src: Path


def _system_python_problem() -> str:
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    check = [str(SYSTEM_PYTHON), "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]
    if subprocess.run(check, check=False).returncode != 0:
        return f"{SYSTEM_PYTHON} is older than 3.11"
    return ""


@pytest.fixture(scope="session")
def foreign() -> Iterator[ForeignPython]:
    problem = _system_python_problem()
    if problem:
        pytest.skip(f"no interpreter other users can run: {problem}")
    root = Path(tempfile.mkdtemp(prefix="sv-py-", dir="/tmp"))
    try:
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(root / "venv")], check=True)
        pip = [str(root / "venv/bin/python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "pyzmq", "msgpack"], check=True, capture_output=True)
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(REPO / "supervisor", root / "src/supervisor", ignore=skip)
        shutil.copytree(REPO / "tests/bots", root / "src/tests/bots", ignore=skip)
        (root / "src/tests/__init__.py").touch()
        subprocess.run(["chmod", "-R", "a+rX", str(root)], check=True)
        yield ForeignPython(root / "venv/bin/python", root / "src")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bot_table(name: str, foreign: ForeignPython, user: str, target: str, mode: str) -> str:
    return f"""
[bots.{name}]
command = ["{foreign.python}", "-m", "supervisor.sdk.entry", "{target}"]
cwd = "{foreign.src}"
user = "{user}"
readiness = "sdk"
ready_timeout_s = "3s"
stop_timeout_s = "5s"
env = {{ PYTHONPATH = "{foreign.src}", PYTHONDONTWRITEBYTECODE = "1", SDK_MODE = "{mode}" }}
"""


def worker(sup: Supervisor, bot: str) -> dict[str, Any]:
    found: dict[str, Any] = sup.bot(bot)["workers"][0]
    return found


def wait_ready_with_metrics(sup: Supervisor, bot: str, metric: str) -> dict[str, Any]:
    def arrived() -> dict[str, Any] | None:
        w = worker(sup, bot)
        return w if w["ready"] and w["sdk_connected"] and metric in w["metrics"] else None

    return wait_until(arrived, timeout_s=20, what=f"{bot} ready through the SDK, with {metric}")


@pytest.mark.parametrize(
    ("target", "mode", "metric"),
    [
        ("tests.bots.sdk:main", "drain", "waiting_for_drain"),
        ("tests.bots.sdk:sync_main", "", "ticks"),
    ],
    ids=["async", "sync"],
)
def test_an_sdk_bot_of_another_user_is_ready_reports_and_drains(
    sup: Supervisor, foreign: ForeignPython, target: str, mode: str, metric: str
) -> None:
    """As nobody: ready through the SDK, metrics in status, not restarted, drain reaches it."""
    sup.dir.chmod(0o755)  # mkdtemp made it root's alone; run_dir's parents must be traversable
    sup.configure(bot_table("u", foreign, FIRST, target, mode))
    sup.start()
    first = wait_ready_with_metrics(sup, "u", metric)
    assert psutil.Process(first["pid"]).uids().real == pwd.getpwnam(FIRST).pw_uid
    # Past ready_timeout_s and a few heartbeats: still the same worker, never restarted.
    wait_until(lambda: worker(sup, "u")["uptime_s"] > 4, what="u to outlive ready_timeout_s")
    assert (worker(sup, "u")["pid"], sup.bot("u")["restarts"]) == (first["pid"], 0)
    sup.request("scale", bot="u", count=0)
    exited = wait_until(lambda: sup.events("worker_exited"), what="u to end after its drain")
    assert [e["bot"] for e in sup.events("worker_draining")] == ["u"]
    assert (exited[0]["exit_code"], exited[0]["signal"]) == (0, None)  # it ended itself


def reach_as(foreign: ForeignPython, user: str, address: str) -> str:
    """What the SDK says on stderr when `user` starts a worker on `address`."""
    entry = pwd.getpwnam(user)
    env = {
        "PYTHONPATH": str(foreign.src),
        "SUPERVISOR_WORKERS": address,
        "SUPERVISOR_TOKEN": "00" * 16,
        "SUPERVISOR_BOT": "intruder",
        "SUPERVISOR_WORKER": "0",
        "SUPERVISOR_PID": "1",
    }
    code = "from supervisor.worker import Worker; Worker.connect_sync()._dealer.close()"
    result = subprocess.run(
        [str(foreign.python), "-c", code],
        env=env,
        cwd=foreign.src,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stderr


def test_another_user_reaches_neither_the_first_users_endpoint_nor_ours(
    sup: Supervisor, foreign: ForeignPython
) -> None:
    """Each user's endpoint is its own: daemon's SDK cannot open nobody's, nor the control
    socket, and says so once, with the endpoint and EACCES; nobody's own SDK connects."""
    sup.dir.chmod(0o755)
    sup.configure(
        bot_table("u", foreign, FIRST, "tests.bots.sdk:main", "drain")
        + bot_table("v", foreign, SECOND, "tests.bots.sdk:main", "drain")
    )
    sup.start()
    wait_ready_with_metrics(sup, "u", "waiting_for_drain")
    wait_ready_with_metrics(sup, "v", "waiting_for_drain")
    nobody = pwd.getpwnam(FIRST)
    theirs = f"ipc://{sup.run_dir}/workers.d/{nobody.pw_uid}-{nobody.pw_gid}/workers"
    for address in (theirs, f"ipc://{sup.run_dir}/control", f"ipc://{sup.run_dir}/workers"):
        said = reach_as(foreign, SECOND, address)
        assert said.count("\n") == 1, said
        assert f"cannot connect to {address}: EACCES" in said
    assert reach_as(foreign, FIRST, theirs) == ""


def test_a_worker_whose_sdk_cannot_connect_says_why_and_status_shows_it(
    sup: Supervisor, foreign: ForeignPython
) -> None:
    """run_dir's parent left 0700: the worker prints the endpoint and errno once, and status
    has sdk_connected false for it."""
    sup.configure(bot_table("u", foreign, FIRST, "tests.bots.sdk:main", "idle"))
    sup.start()

    def complaint() -> list[dict[str, Any]]:
        lines = sup.events("worker_output")
        return [e for e in lines if "cannot connect to ipc://" in e["line"]]

    said = wait_until(complaint, what="the SDK to say it cannot connect")
    assert "EACCES" in said[0]["line"]
    assert worker(sup, "u")["sdk_connected"] is False


def test_a_bot_of_another_user_added_by_a_reload_gets_its_endpoint(
    sup: Supervisor, foreign: ForeignPython
) -> None:
    """The first bot of a user may come with a reload: its endpoint is bound then."""
    sup.dir.chmod(0o755)
    sup.configure(bot_table("u", foreign, FIRST, "tests.bots.sdk:main", "drain"))
    sup.start()
    wait_ready_with_metrics(sup, "u", "waiting_for_drain")
    sup.configure(
        bot_table("u", foreign, FIRST, "tests.bots.sdk:main", "drain")
        + bot_table("v", foreign, SECOND, "tests.bots.sdk:sync_main", "")
    )
    assert sup.request("reload")["added"] == ["v"]
    wait_ready_with_metrics(sup, "v", "ticks")
