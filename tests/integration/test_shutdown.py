"""No process of the fleet outlives the supervisor: shutdown, SIGTERM, kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess

import pytest

from supervisor.procfs import start_ticks
from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until
from tests.unit.test_config import BAD_CONFIGS


def family_config(sup: Supervisor, escaped: bool = True) -> str:
    """Bots whose workers each start a grandchild in their group and (unless told not to) one
    that escapes it with setsid: only a graceful stop can find that one, as our orphan."""
    escape = f"setsid sleep 1001 & echo $! > {sup.dir}/esc.$SUPERVISOR_WORKER; " if escaped else ""
    return f"""
[bots.first]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "sleep 1000 & echo $! > {sup.dir}/gc.first.$SUPERVISOR_WORKER; wait"]
workers = 2
stop_timeout_s = "3s"

[bots.second]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "{escape}sleep 1000 & echo $! > {sup.dir}/gc.second.$SUPERVISOR_WORKER; wait"]
workers = 2
stop_timeout_s = "3s"
"""


def family(sup: Supervisor, escaped: bool = True) -> list[int]:
    """Every pid of the fleet: workers and the grandchildren they wrote down."""
    workers = [*sup.wait_running("first", 2).values(), *sup.wait_running("second", 2).values()]
    names = ["gc.first.0", "gc.first.1", "gc.second.0", "gc.second.1"]
    names += ["esc.0", "esc.1"] if escaped else []
    files = [sup.dir / n for n in names]
    wait_until(
        lambda: all(f.exists() and f.read_text().strip() for f in files), what="grandchildren"
    )
    grandchildren = [int(f.read_text()) for f in files]
    assert all(pid_alive(p) for p in workers + grandchildren)
    return workers + grandchildren


def test_shutdown_command_leaves_nothing_behind(sup: Supervisor) -> None:
    """`supervisor shutdown` returns once every worker and grandchild is gone, even one that
    left the worker's process group, and the supervisor exits 0."""
    sup.configure(family_config(sup))
    sup.start()
    pids = family(sup)
    out = sup.cli("shutdown")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "supervisor stopped (2 bots)"
    assert [p for p in pids if pid_alive(p)] == []
    assert sup.wait_exit() == 0
    assert not (sup.run_dir / "control").exists()


def test_sigterm_stops_bots_in_reverse_order(sup: Supervisor) -> None:
    """SIGTERM stops the fleet gracefully, the last bot first, and nothing stays behind."""
    sup.configure(family_config(sup))
    sup.start()
    pids = family(sup)
    os.kill(sup.pid, signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert [p for p in pids if pid_alive(p)] == []
    stopped = [e["bot"] for e in sup.events("worker_exited") if e["expected"]]
    assert stopped == ["second", "second", "first", "first"]


def test_kill9_of_the_supervisor_ends_the_fleet(sup: Supervisor) -> None:
    """After kill -9 of the supervisor, the guardian ends every worker group (grandchildren
    included) within the stop timeout."""
    sup.configure(family_config(sup, escaped=False))
    sup.start()
    pids = family(sup, escaped=False)
    sup.kill9()
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout_s=10, what="the fleet to end")


def test_next_run_ends_leftovers_that_outlived_supervisor_and_guardian(sup: Supervisor) -> None:
    """If the guardian cannot act either, the next `supervisor run` ends the leftovers named
    in its state file."""
    sup.configure(family_config(sup, escaped=False))
    sup.start()
    pids = family(sup, escaped=False)
    guardian = next(
        int(p)
        for p in _children_cmdlines(sup.pid)
        if "guardian.py" in _children_cmdlines(sup.pid)[p]
    )
    os.kill(guardian, signal.SIGSTOP)  # it will be killed before it can act
    sup.kill9()
    os.kill(guardian, signal.SIGKILL)
    assert all(pid_alive(p) for p in pids)
    sup.start()
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout_s=10, what="leftovers to end")
    assert sup.events("leftovers_ended")[0]["groups"] == 4


def test_leftover_cleanup_never_kills_a_reused_pid(sup: Supervisor) -> None:
    """A state file entry whose pid now belongs to another process (another start time) is
    skipped; one whose pid and start time match is ended."""
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    leftover = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        sup.run_dir.mkdir(mode=0o700)
        groups = [
            {
                "pgid": stranger.pid,
                "start_ticks": start_ticks(stranger.pid) - 1,
                "signal": 15,
                "timeout_s": 1.0,
            },  # type: ignore[operator]
            {
                "pgid": leftover.pid,
                "start_ticks": start_ticks(leftover.pid),
                "signal": 15,
                "timeout_s": 1.0,
            },
        ]
        (sup.run_dir / "state.json").write_text(
            json.dumps({"version": 1, "pins": {}, "groups": groups})
        )
        sup.configure('[bots.x]\ncommand = ["sleep", "1000"]\n')
        sup.start()
        assert leftover.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        stranger.kill()
        leftover.kill()
        stranger.wait()
        leftover.wait()


def _leaderless_group(env: dict[str, str]) -> int:
    """A process group whose leader has exited and been reaped; returns its one member."""
    sh = subprocess.Popen(
        ["sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"],
        stdout=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    assert sh.stdout is not None
    member = int(sh.stdout.readline())
    sh.wait()
    sh.stdout.close()
    assert os.getpgid(member) == sh.pid
    assert start_ticks(sh.pid) is None
    return member


def test_leftover_cleanup_ends_a_leaderless_group_only_if_it_carries_our_run_dir(
    sup: Supervisor,
) -> None:
    """A group named by the state file whose leader is gone may have ended and its id gone to
    another program whose leader left members behind: it is ended only if a member has our
    run dir in its environment, as everything our workers start does."""
    sup.run_dir.mkdir(mode=0o700)
    ours = _leaderless_group(dict(os.environ, SUPERVISOR_RUN_DIR=str(sup.run_dir)))
    theirs = _leaderless_group(dict(os.environ, SUPERVISOR_RUN_DIR="/elsewhere"))
    try:
        groups = [
            {"pgid": os.getpgid(p), "start_ticks": 1, "signal": 15, "timeout_s": 1.0}
            for p in (theirs, ours)
        ]
        (sup.run_dir / "state.json").write_text(
            json.dumps({"version": 1, "pins": {}, "groups": groups})
        )
        sup.configure('[bots.x]\ncommand = ["sleep", "1000"]\n')
        sup.start()
        wait_until(lambda: not pid_alive(ours), timeout_s=10, what="our leftover to end")
        assert sup.events("leftovers_ended")[0]["groups"] == 1
        assert pid_alive(theirs)
    finally:
        for pid in (ours, theirs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_worker_ignoring_its_stop_signal_is_killed_after_the_timeout(sup: Supervisor) -> None:
    """A worker that ignores SIGTERM gets SIGKILL once stop_timeout_s has passed."""
    sup.configure(
        """
[bots.stubborn]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "trap '' TERM; exec sleep 1000"]
stop_timeout_s = "300ms"
"""
    )
    sup.start()
    pid = sup.wait_running("stubborn", 1)[0]
    assert sup.cli("stop", "stubborn").returncode == 0
    assert not pid_alive(pid)
    assert sup.events("worker_killed")[0]["pid"] == pid
    assert sup.events("worker_exited")[0]["signal"] == signal.SIGKILL


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_config_starts_nothing(text: str, message: str) -> None:
    """`supervisor run` and `check` on a bad config exit 2 with the key path, starting nothing."""
    sup = Supervisor()
    try:
        sup.config_path.write_text(text)
        for command in ("run", "check"):
            out = sup.cli(command, timeout_s=30)
            assert out.returncode == 2
            assert any(
                line.startswith(f"supervisor: {message}") for line in out.stderr.splitlines()
            ), out.stderr
        assert not (sup.dir / ".supervisor").exists()
    finally:
        sup.cleanup()


def _children_cmdlines(pid: int) -> dict[int, str]:
    import psutil

    return {p.pid: " ".join(p.cmdline()) for p in psutil.Process(pid).children()}


def test_second_interrupt_kills_at_once(sup: Supervisor) -> None:
    """A second SIGINT during a graceful shutdown SIGKILLs what is left instead of waiting."""
    sup.configure(
        """
[bots.first]
ready_after_s = 0  # no SDK: ready at once
command = ["sleep", "1000"]

[bots.stubborn]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "trap '' TERM INT; exec sleep 1000"]
stop_timeout_s = "60s"
""",
        shutdown_timeout_s=120,
    )
    sup.start()
    first = sup.wait_running("first", 1)[0]
    pid = sup.wait_running("stubborn", 1)[0]
    os.kill(sup.pid, signal.SIGINT)
    wait_until(lambda: sup.events("shutdown_requested"), what="the shutdown to begin")
    os.kill(sup.pid, signal.SIGINT)
    assert sup.wait_exit(timeout_s=30) == 0
    assert not pid_alive(pid)
    assert not pid_alive(first)
    assert sup.events("shutdown_forced")
    assert not sup.events("worker_restarting")  # a kill during shutdown is no crash


def test_repeated_sigterm_still_shuts_down_gracefully(sup: Supervisor) -> None:
    """SIGTERM from two sources at once (make and timeout, say) is one graceful shutdown:
    workers get their stop timeout, and nothing is restarted meanwhile."""
    sup.configure(
        """
[bots.slow]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "trap 'sleep 0.3; exit 0' TERM; while true; do sleep 0.05; done"]
workers = 2
stop_timeout_s = "20s"

[bots.other]
ready_after_s = 0  # no SDK: ready at once
command = ["sleep", "1000"]
"""
    )
    sup.start()
    sup.wait_running("slow", 2)
    sup.wait_running("other", 1)
    os.kill(sup.pid, signal.SIGTERM)
    wait_until(lambda: sup.events("shutdown_requested"), what="the shutdown to begin")
    os.kill(sup.pid, signal.SIGTERM)
    assert sup.wait_exit() == 0
    exits = {e["pid"]: e for e in sup.events("worker_exited")}
    assert [e["exit_code"] for e in exits.values() if e["bot"] == "slow"] == [0, 0]
    assert not sup.events("shutdown_forced")
    assert not sup.events("worker_restarting")


def test_shutdown_does_not_wait_out_a_drain(sup: Supervisor) -> None:
    """Workers drained by a scale-down that do not end on DRAIN (this SDK bot ignores it) get
    their stop signal with the rest at shutdown, not after their 10-minute drain wait; the
    shutdown ends well inside shutdown_timeout_s, with nothing SIGKILLed."""
    sup.configure(
        f"""
[bots.idle]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
workers = 3
stop_timeout_s = "10m"
env = {{ SDK_MODE = "idle" }}
"""
    )
    sup.start()
    sup.wait_running("idle", 3)
    assert sup.cli("scale", "idle", "1").returncode == 0
    wait_until(lambda: len(sup.events("worker_draining")) == 2, what="two workers draining")
    sup.request("shutdown")
    assert sup.wait_exit() == 0
    assert not sup.events("shutdown_timed_out")
    exits = sup.events("worker_exited")
    assert len(exits) == 3
    assert {e["signal"] for e in exits} == {signal.SIGTERM}, exits
