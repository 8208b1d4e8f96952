"""Faults from outside: a bad state file, a full disk, a deleted log directory, too few file
descriptors, a stopped supervisor. Each test checks what the operator sees and that nothing
the README promises to keep was lost."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from supervisor.daemon.helpers.guardian import start_ticks
from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until

TICKER = """
[bots.tick]
command = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done"]
ready_after_s = 0
workers = 2
stop_timeout_s = "1s"
"""


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process that is not ours, in its own group: no state file may get it killed."""
    proc = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _state_texts(pgid: int) -> dict[str, str]:
    ticks = start_ticks(pgid)
    good_group = {"pgid": pgid, "start_ticks": ticks, "signal": 9, "timeout_s": 1}
    return {
        "corrupt": "\x00\xff{{{ not json",
        "truncated": json.dumps({"version": 1, "pins": {"tick": 1}, "groups": []})[:20],
        # Another program's (or a future version's) file naming the bystander exactly:
        # refused whole, so its group is never signalled.
        "foreign": json.dumps({"version": 2, "groups": [good_group]}),
        "wrong_types": json.dumps(
            {"version": 1, "pins": {"tick": 10**9}, "groups": [dict(good_group, pgid=str(pgid))]}
        ),
    }


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "foreign", "wrong_types"])
def test_a_bad_state_file_is_set_aside_and_kills_nothing_of_others(
    sup: Supervisor, bystander: subprocess.Popen[bytes], kind: str
) -> None:
    sup.run_dir.mkdir(mode=0o700)
    (sup.run_dir / "state.json").write_text(_state_texts(bystander.pid)[kind])
    sup.configure(TICKER)
    sup.start()
    sup.wait_running("tick", 2)  # started anyway, with the config's count (no wild pin)
    warned = sup.events("state_corrupt")
    assert warned, sup.log()
    assert warned[0]["kept_as"].endswith("state.json.corrupt")
    assert (sup.run_dir / "state.json.corrupt").exists()
    assert pid_alive(bystander.pid)
    sup.request("shutdown")
    assert sup.wait_exit() == 0
    assert pid_alive(bystander.pid)


def _segments(sup: Supervisor) -> list[Path]:
    return sorted((sup.run_dir / "logs" / "tick").glob("0.*.log"))


def _ticks(sup: Supervisor) -> list[int]:
    found = []
    for path in _segments(sup):
        for line in path.read_text(errors="replace").splitlines():
            if " tick " in line:
                with contextlib.suppress(ValueError):
                    found.append(int(line.rsplit(" ", 1)[1]))
    return found


def test_the_log_directory_removed_under_a_running_fleet_comes_back(sup: Supervisor) -> None:
    sup.configure(TICKER)
    sup.start()
    pids = sup.wait_running("tick", 2)
    wait_until(lambda: len(_ticks(sup)) > 5, timeout_s=30, what="lines on disk")
    shutil.rmtree(sup.run_dir / "logs")
    # New lines land in new files again (not in the deleted inode), the operator is told.
    wait_until(lambda: len(_ticks(sup)) > 5, timeout_s=30, what="lines on disk again")
    assert sup.events("log_file_removed")
    assert sup.pids("tick") == pids  # the workers never noticed
    out = sup.cli("logs", "tick")
    assert out.returncode == 0, out.stderr
    assert " tick " in out.stdout


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MiB tmpfs of our own, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = Path(f"/tmp/sv-disk-{os.getpid()}")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def test_run_dir_on_a_full_disk_keeps_the_fleet_and_the_control_socket(
    sup: Supervisor, small_disk: Path
) -> None:
    """Workers log onto a disk that fills up: the loop, the workers and `scale` go on; lost
    batches are counted in status; once there is room again, lines reach the disk again."""
    sup.run_dir = small_disk / "run"
    sup.configure(TICKER.replace("workers = 2", "workers = 2\nlog_max_bytes = 0"))
    text = sup.config_path.read_text().replace('run_dir = "run"', f'run_dir = "{sup.run_dir}"')
    sup.config_path.write_text(text)
    sup.start()
    pids = sup.wait_running("tick", 2)
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as f:
        while True:
            f.write(b"\0" * (64 << 10))
    header = wait_until(
        lambda: (h := sup.status()["supervisor"])["log_write_failures"] > 0 and h,
        timeout_s=30,
        what="a failed log write",
    )
    assert header["log_write_failures"] > 0
    assert sup.events("log_write_failed")
    # The control socket still acts, even on state it cannot save right now.
    result = sup.request("scale", bot="tick", count=3)
    assert result["desired"] == 3
    assert "not saved to disk yet (No space left on device)" in result["warning"]
    assert sup.status()["supervisor"]["state_save_error"] == "No space left on device"
    sup.wait_running("tick", 3)
    assert set(pids.values()) <= set(sup.pids("tick").values())
    filler.unlink()
    before = len(_ticks(sup))
    wait_until(lambda: len(_ticks(sup)) > before + 5, timeout_s=30, what="lines once freed")
    # ... and the pin the full disk held back is on disk now (it survives a restart).
    wait_until(
        lambda: not sup.status()["supervisor"]["state_save_error"], timeout_s=30, what="a save"
    )
    assert json.loads((sup.run_dir / "state.json").read_text())["pins"] == {"tick": 3}
    sup.request("shutdown")
    assert sup.wait_exit() == 0


def test_too_few_file_descriptors_for_a_scale_up_is_reported_and_retried(sup: Supervisor) -> None:
    """With RLIMIT_NOFILE low, a scale-up runs out of descriptors: the spawns that cannot
    happen are events, the loop keeps answering, and the bot gets there once fds free up."""
    sup.configure(TICKER.replace("workers = 2", "workers = 1"))
    limit = 160
    sup.start(wrap=["prlimit", f"--nofile={limit}:{limit}", "--"])
    sup.wait_running("tick", 1)
    sup.request("scale", bot="tick", count=80)  # 2 pipes each: far past 160 fds
    wait_until(lambda: sup.events("worker_spawn_failed"), timeout_s=60, what="a failed spawn")
    assert sup.request("ping")["pid"] == sup.pid  # the loop is up
    bot = sup.bot("tick")
    assert 1 <= bot["running"] < 80
    sup.request("scale", bot="tick", count=5)
    sup.wait_running("tick", 5, timeout_s=60)
    sup.request("shutdown")
    assert sup.wait_exit() == 0


def test_a_stopped_supervisor_resumes_without_killing_its_workers(sup: Supervisor) -> None:
    """SIGSTOP for 5 s, then SIGCONT: every heartbeat deadline has passed meanwhile, yet no
    worker is killed for it; the workers ran all along."""
    sup.configure(
        f"""
[bots.sdk]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
workers = 4
readiness = "sdk"
heartbeat_timeout_s = "2s"
env = {{ SDK_MODE = "idle" }}
stop_timeout_s = "2s"
"""
    )
    sup.start()
    pids = sup.wait_running("sdk", 4)
    os.kill(sup.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_until(
            lambda: psutil.Process(sup.pid).status() == psutil.STATUS_STOPPED,
            what="the supervisor to stop",
        )
        # 5 s of the supervisor stopped (the fault itself, not a wait for a result).
        while time.monotonic() - stopped < 5:
            assert all(pid_alive(p) for p in pids.values())
            time.sleep(0.1)
    finally:
        os.kill(sup.pid, signal.SIGCONT)
    # Give the resumed loop a few heartbeat intervals to (wrongly) act.
    beats = sup.bot("sdk")["restarts"]
    wait_until(lambda: sup.status()["supervisor"]["uptime_s"] > 0, what="an answer")
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        bot = sup.bot("sdk")
        assert {w["slot"]: w["pid"] for w in bot["workers"]} == pids, bot
        time.sleep(0.2)
    assert sup.bot("sdk")["restarts"] == beats == 0
    assert sup.events("supervisor_was_paused")  # what the operator sees
    sup.request("shutdown")
    assert sup.wait_exit() == 0


FAKE_CLOCK = """
import os, time
_real = time.time
_offset_file = os.environ["FAKE_CLOCK_OFFSET_FILE"]


def _fake() -> float:
    try:
        with open(_offset_file) as f:
            offset = float(f.read() or 0)
    except (OSError, ValueError):
        return _real()
    if offset:
        open(_offset_file + ".seen", "a").close()  # proof that the supervisor read it
    return _real() + offset


time.time = _fake
time.time_ns = lambda: int(_fake() * 1e9)
"""


def test_wall_clock_jumps_move_no_timer(sup: Supervisor) -> None:
    """The supervisor's wall clock (time.time, patched in by a sitecustomize) jumps a day
    ahead, then an hour back: no worker is killed by its watchdog, and a crash is restarted
    after its usual backoff, neither at once forever nor never."""
    hook = sup.dir / "clock"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAKE_CLOCK)
    offset = sup.dir / "offset"
    offset.write_text("0")
    sup.configure(
        f"""
[bots.sdk]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
workers = 2
readiness = "sdk"
heartbeat_timeout_s = "2s"
spawn = "exec"
env = {{ SDK_MODE = "idle", PYTHONPATH = "" }}
stop_timeout_s = "2s"
"""
    )
    sup.start(env={"PYTHONPATH": str(hook), "FAKE_CLOCK_OFFSET_FILE": str(offset)})
    pids = sup.wait_running("sdk", 2)
    for jump in ("86400", "-3600"):
        offset.write_text(jump)
        sup.request("scale", bot="sdk", count=2)  # an event: stamped with the jumped clock
        # Three heartbeat timeouts of real time with the wall clock jumped.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert sup.pids("sdk") == pids
            time.sleep(0.2)
    assert (sup.dir / "offset.seen").exists(), "the fake clock was never read"
    os.kill(pids[0], signal.SIGKILL)
    new = wait_until(
        lambda: (p := sup.pids("sdk")).get(0) not in (None, pids[0]) and p,
        timeout_s=30,
        what="the killed worker back",
    )
    assert new[1] == pids[1]
    assert sup.bot("sdk")["restarts"] == 1
    sup.request("shutdown")
    assert sup.wait_exit() == 0
