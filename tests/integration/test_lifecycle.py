"""A real `supervisor run`: workers are replaced, crash loops fail, scaling keeps the others."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil

from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until

SLEEPERS = """
[bots.sleeper]
ready_after_s = 0  # no SDK: ready at once
command = ["sleep", "1000"]
workers = 3
stop_timeout_s = "2s"
"""


def test_killed_worker_is_replaced_in_its_slot(sup: Supervisor) -> None:
    """kill -9 of a worker gets a new process in the same slot; the others are untouched."""
    sup.configure(SLEEPERS)
    sup.start()
    before = sup.wait_running("sleeper", 3)
    os.kill(before[1], signal.SIGKILL)
    after = wait_until(
        lambda: (p := sup.pids("sleeper")).get(1, before[1]) != before[1] and len(p) == 3 and p,
        what="slot 1 to be replaced",
    )
    assert after[0] == before[0]
    assert after[2] == before[2]
    bot = sup.bot("sleeper")
    assert bot["restarts"] == 1
    assert [w["restarts"] for w in bot["workers"]] == [0, 1, 0]
    exited = sup.events("worker_exited")
    assert {"bot": "sleeper", "worker": 1, "pid": before[1], "signal": 9}.items() <= exited[
        0
    ].items()


def test_crash_loop_fails_the_bot_and_start_revives_it(sup: Supervisor) -> None:
    """A bot that keeps crashing ends `failed` (status exit 3); `start` revives it once fixed."""
    flag = sup.dir / "broken"
    flag.touch()
    sup.configure(
        f"""
[bots.crashy]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "test -e {flag} && exit 1; exec sleep 1000"]
workers = 2
backoff_initial_s = "10ms"
backoff_max_s = "50ms"
max_restarts = 3
restart_window_s = "1m"
"""
    )
    sup.start()
    wait_until(lambda: sup.bot("crashy")["state"] == "failed", what="crashy to fail")
    bot = sup.bot("crashy")
    assert bot["failure"].endswith("restarted 3 times within 60s")
    assert bot["running"] == 0
    assert {w["state"] for w in bot["workers"]} == {"failed"}
    assert sup.events("bot_failed")[0]["bot"] == "crashy"
    status = sup.cli("status")
    assert status.returncode == 3
    assert "failed" in status.stdout

    flag.unlink()
    started = sup.cli("start", "crashy")
    assert started.returncode == 0, started.stderr
    sup.wait_running("crashy", 2)
    assert sup.cli("status").returncode == 0


def test_scale_up_and_down_keeps_other_workers(sup: Supervisor) -> None:
    """scale adds slots above the others and removes the highest first; no other pid changes."""
    sup.configure(SLEEPERS)
    sup.start()
    first = sup.wait_running("sleeper", 3)
    out = sup.cli("scale", "sleeper", "6")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sleeper: 3 -> 6 workers (pinned)"
    six = sup.wait_running("sleeper", 6)
    assert {k: six[k] for k in first} == first
    assert sup.cli("scale", "sleeper", "2").returncode == 0
    two = sup.wait_running("sleeper", 2)
    assert two == {0: first[0], 1: first[1]}
    wait_until(lambda: not any(pid_alive(six[s]) for s in (2, 3, 4, 5)), what="slots 2-5 to end")
    assert sup.bot("sleeper")["mode"] == "pinned"
    assert [e["desired"] for e in sup.events("bot_scaled")] == [6, 2]


def test_scale_survives_a_supervisor_restart(sup: Supervisor) -> None:
    """The pinned count is saved in run_dir and comes back with the next run; auto releases it."""
    sup.configure(SLEEPERS)
    sup.start()
    sup.wait_running("sleeper", 3)
    assert sup.cli("scale", "sleeper", "5").returncode == 0
    assert sup.cli("shutdown").returncode == 0
    assert sup.wait_exit() == 0
    sup.start()
    sup.wait_running("sleeper", 5)
    assert sup.bot("sleeper")["mode"] == "pinned"
    out = sup.cli("scale", "sleeper", "auto")
    assert out.stdout.strip() == "sleeper: 5 -> 3 workers (fixed)"
    sup.wait_running("sleeper", 3)


def test_status_json_matches_the_real_processes(sup: Supervisor) -> None:
    """Each reported pid is a live child of the supervisor, leading its own process group,
    running the bot's command with the SUPERVISOR_* environment, with the RSS psutil sees."""
    sup.configure(
        f"""
[bots.echo]
ready_after_s = 0  # no SDK: ready at once
module = "bots.echo:main"
spawn = "exec"  # /proc/PID/environ of a forked worker shows the fork server's
workers = 2
cwd = "{REPO}"
env = {{ GREETING = "hi" }}

{SLEEPERS}
"""
    )
    sup.start()
    sup.wait_running("echo", 2)
    sup.wait_running("sleeper", 3)
    import json

    out = sup.cli("status", "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["supervisor"]["pid"] == sup.pid
    children = {p.pid for p in psutil.Process(sup.pid).children()}
    for name, bot in status["bots"].items():
        assert (bot["state"], bot["running"], bot["desired"]) == (
            "running",
            len(bot["workers"]),
            len(bot["workers"]),
        )
        for w in bot["workers"]:
            proc = psutil.Process(w["pid"])
            assert w["pid"] in children
            assert os.getpgid(w["pid"]) == w["pid"]
            env = proc.environ()
            assert (env["SUPERVISOR_BOT"], env["SUPERVISOR_WORKER"]) == (name, str(w["slot"]))
            rss = proc.memory_info().rss
            assert 0.5 * rss <= w["rss_bytes"] <= 2 * rss
            assert w["cpu_percent"] >= 0
    assert psutil.Process(status["bots"]["echo"]["workers"][0]["pid"]).environ()["GREETING"] == "hi"
    assert psutil.Process(status["bots"]["sleeper"]["workers"][0]["pid"]).cmdline() == [
        "sleep",
        "1000",
    ]


def test_stop_start_restart_one_worker_and_a_bot(sup: Supervisor) -> None:
    """stop --worker holds one slot down; restart gives every worker a new pid; start brings all back."""
    sup.configure(SLEEPERS)
    sup.start()
    first = sup.wait_running("sleeper", 3)
    assert sup.cli("stop", "sleeper", "--worker", "1").returncode == 0
    assert not pid_alive(first[1])
    bot = sup.bot("sleeper")
    assert (bot["state"], bot["running"]) == ("degraded", 2)
    assert [w["state"] for w in bot["workers"]] == ["running", "stopped", "running"]
    assert sup.cli("start", "sleeper", "--worker", "1").returncode == 0
    again = sup.wait_running("sleeper", 3)
    assert again[0] == first[0]
    assert again[1] != first[1]

    assert sup.cli("restart", "sleeper").returncode == 0
    restarted = sup.wait_running("sleeper", 3)
    assert set(restarted.values()).isdisjoint(again.values())

    assert sup.cli("stop", "sleeper").returncode == 0
    bot = sup.bot("sleeper")
    assert (bot["state"], bot["running"]) == ("stopped", 0)
    assert not any(pid_alive(p) for p in restarted.values())
    assert sup.cli("start", "sleeper").returncode == 0
    sup.wait_running("sleeper", 3)


def test_restart_policies_on_failure_and_never(sup: Supervisor) -> None:
    """on-failure keeps a clean exit down and restarts a crash; never keeps both down."""
    sup.configure(
        """
[bots.clean]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "exit 0"]
restart = "on-failure"

[bots.once]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "exit 3"]
restart = "never"
"""
    )
    sup.start()
    wait_until(lambda: sup.bot("clean")["workers"][0]["state"] == "exited", what="clean to exit")
    wait_until(lambda: sup.bot("once")["workers"][0]["state"] == "exited", what="once to exit")
    assert sup.bot("clean")["restarts"] == 0
    assert sup.bot("once")["restarts"] == 0
    assert sup.bot("once")["state"] == "degraded"
    codes = {e["bot"]: e["exit_code"] for e in sup.events("worker_exited")}
    assert codes == {"clean": 0, "once": 3}


def test_worker_output_becomes_structured_events(sup: Supervisor) -> None:
    """stdout and stderr lines are logged as worker_output events with bot, worker and pid."""
    sup.configure(
        """
[bots.talker]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "echo hello out; echo hello err >&2; exec sleep 1000"]
"""
    )
    sup.start()
    pid = sup.wait_running("talker", 1)[0]
    lines = wait_until(lambda: len(e := sup.events("worker_output")) >= 2 and e, what="two lines")
    got = {(e["stream"], e["line"], e["bot"], e["worker"], e["pid"]) for e in lines}
    assert got == {
        ("stdout", "hello out", "talker", 0, pid),
        ("stderr", "hello err", "talker", 0, pid),
    }


def test_a_flooding_worker_does_not_block_the_supervisor(sup: Supervisor) -> None:
    """While one worker writes output as fast as it can, commands are answered and a killed
    worker of another bot is still replaced."""
    sup.configure(
        """
[bots.flood]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "yes 'a line of output that goes on and on'"]

"""
        + SLEEPERS
    )
    sup.start()
    before = sup.wait_running("sleeper", 3)
    sup.wait_running("flood", 1)
    for _ in range(20):
        assert sup.request("status", timeout_s=5.0)["bots"]["flood"]["running"] == 1
    os.kill(before[0], signal.SIGKILL)
    wait_until(lambda: sup.pids("sleeper").get(0, before[0]) != before[0], what="replacement")
    assert len(sup.events("worker_output")) > 100


def test_second_supervisor_on_the_same_run_dir_is_refused(sup: Supervisor) -> None:
    """Two supervisors never share a run_dir: the second says who holds it and exits 1."""
    sup.configure(SLEEPERS)
    sup.start()
    second = sup.cli("run", timeout_s=30)
    assert second.returncode == 1
    assert f"another supervisor (pid {sup.pid}) is running" in second.stderr


def test_orphaned_grandchildren_are_reaped(sup: Supervisor) -> None:
    """A worker's own child that it orphans is adopted and reaped: no zombie stays behind."""
    sup.configure(
        """
[bots.parent]
ready_after_s = 0  # no SDK: ready at once
command = ["sh", "-c", "(sleep 0.2 &) ; exec sleep 1000"]
"""
    )
    sup.start()
    sup.wait_running("parent", 1)
    wait_until(lambda: sup.events("orphan_reaped"), what="the orphan to be reaped")
    zombies = [p for p in psutil.Process(sup.pid).children() if p.status() == psutil.STATUS_ZOMBIE]
    assert zombies == []


def test_unknown_bot_and_bad_counts_get_clear_errors(sup: Supervisor) -> None:
    """Operator mistakes are refused with a message and exit code 1, and change nothing."""
    sup.configure(SLEEPERS)
    sup.start()
    sup.wait_running("sleeper", 3)
    cases = {
        ("scale", "nope", "3"): "no bot named 'nope' (bots: sleeper)",
        (
            "scale",
            "sleeper",
            "-1",
        ): "the count must be a whole number from 0 to 10000, or auto; got -1",
        ("scale", "sleeper", "many"): "N must be a whole number or auto, got 'many'",
        ("stop", "sleeper", "--worker", "9"): "bot sleeper has no worker 9 (workers: 0, 1, 2)",
        ("restart", "ghost"): "no bot named 'ghost' (bots: sleeper)",
    }
    for argv, message in cases.items():
        out = sup.cli(*argv)
        assert (out.returncode, out.stderr.strip()) == (1, f"supervisor: {message}"), argv
    assert sup.bot("sleeper")["desired"] == 3


def test_commands_without_a_supervisor_say_so(tmp_path: Path) -> None:
    """With nothing running, every client command names the socket and how to start one, exit 4."""
    sup = Supervisor()
    try:
        sup.configure(SLEEPERS)
        for argv in (("status",), ("scale", "sleeper", "2"), ("stop", "sleeper"), ("shutdown",)):
            out = sup.cli(*argv, timeout_s=10)
            assert out.returncode == 4, argv
            assert out.stderr.strip() == (
                f"supervisor: no supervisor is running (nothing listens on {sup.run_dir}/control); "
                "start one with `supervisor run`"
            )
    finally:
        sup.cleanup()
