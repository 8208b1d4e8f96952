"""Module bots forked from the fork server start as `python -m supervisor.sdk.entry` would."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.harness import REPO, Supervisor, wait_until


def probes(sup: Supervisor, bots: dict[str, str]) -> str:
    return "".join(
        f"""
[bots.{name}]
ready_after_s = 0  # no SDK: ready at once
module = "tests.bots.probe:main"
cwd = "{REPO}"
workers = 2
{extra}
env = {{ PROBE_DIR = "{sup.dir}", PROBE_COLOUR = "blue" }}
"""
        for name, extra in bots.items()
    )


def report(sup: Supervisor, bot: str, slot: int) -> dict[str, Any]:
    path = sup.dir / f"{bot}.{slot}.json"
    wait_until(path.exists, what=f"{bot}[{slot}] to report")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_forked_and_execed_workers_see_the_same_world(sup: Supervisor) -> None:
    """A forked worker has the environment, cwd, argv, sys.path, process group, parent and
    stdin that an exec'd one has; only its pid differs."""
    sup.configure(probes(sup, {"forked": "", "execed": 'spawn = "exec"'}))
    sup.start()
    for bot in ("forked", "execed"):
        sup.wait_running(bot, 2)
    for slot in (0, 1):
        forked, execed = report(sup, "forked", slot), report(sup, "execed", slot)
        assert forked["ppid"] == execed["ppid"] == sup.pid
        assert forked["pgid"] == forked["pid"]
        assert execed["pgid"] == execed["pid"]
        assert forked["env"]["SUPERVISOR_BOT"] == "forked"
        assert execed["env"]["SUPERVISOR_BOT"] == "execed"
        for key in ("env", "pid", "pgid", "ppid"):
            forked.pop(key)
            execed.pop(key)
        assert forked == execed
        assert forked["cwd"] == str(REPO)
        assert forked["argv"] == ["tests.bots.probe:main"]
        assert forked["stdin"] == ""
    assert sup.pids("forked") == {
        0: report(sup, "forked", 0)["pid"],
        1: report(sup, "forked", 1)["pid"],
    }


def test_forked_worker_output_and_environment(sup: Supervisor) -> None:
    """A forked worker's env is its bot's (not the fork server's) and its prints reach the log."""
    sup.configure(probes(sup, {"forked": ""}))
    sup.start()
    sup.wait_running("forked", 2)
    env = report(sup, "forked", 1)["env"]
    assert env["PROBE_COLOUR"] == "blue"
    assert (env["SUPERVISOR_BOT"], env["SUPERVISOR_WORKER"]) == ("forked", "1")
    lines = wait_until(lambda: len(e := sup.events("worker_output")) >= 4 and e, what="output")
    assert {(e["worker"], e["stream"], e["line"]) for e in lines} == {
        (0, "stdout", "probe 0 up"),
        (0, "stderr", "probe 0 err"),
        (1, "stdout", "probe 1 up"),
        (1, "stderr", "probe 1 err"),
    }


def test_forked_worker_exit_codes(sup: Supervisor) -> None:
    """sys.exit(3) exits 3 and an uncaught exception exits 1 with its traceback on stderr,
    for async bots too; the restart policy sees those codes."""
    sup.configure(
        f"""
[bots.three]
ready_after_s = 0  # no SDK: ready at once
module = "tests.bots.probe:main"
cwd = "{REPO}"
restart = "never"
env = {{ PROBE_DIR = "{sup.dir}", PROBE_THEN = "exit3" }}

[bots.boom]
ready_after_s = 0  # no SDK: ready at once
module = "tests.bots.probe:amain"
cwd = "{REPO}"
restart = "never"
env = {{ PROBE_DIR = "{sup.dir}", PROBE_THEN = "raise" }}
"""
    )
    sup.start()
    exits = wait_until(lambda: len(e := sup.events("worker_exited")) == 2 and e, what="both exits")
    assert {e["bot"]: e["exit_code"] for e in exits} == {"three": 3, "boom": 1}
    errors = [
        e["line"]
        for e in sup.events("worker_output")
        if e["bot"] == "boom" and e["stream"] == "stderr"
    ]
    assert "RuntimeError: probe failed on purpose" in errors


def test_killed_forked_worker_is_replaced(sup: Supervisor) -> None:
    """A forked worker that is killed is replaced like any other, by another fork."""
    import os
    import signal

    sup.configure(probes(sup, {"forked": ""}))
    sup.start()
    before = sup.wait_running("forked", 2)
    os.kill(before[0], signal.SIGKILL)
    after = wait_until(
        lambda: (p := sup.pids("forked")).get(0, before[0]) != before[0] and len(p) == 2 and p
    )
    assert after[1] == before[1]
    assert sup.bot("forked")["restarts"] == 1


def test_a_dead_fork_server_is_started_again(sup: Supervisor) -> None:
    """If the fork server dies, running workers are untouched and the next spawn starts a new one."""
    import os
    import signal

    import psutil

    sup.configure(probes(sup, {"forked": ""}))
    sup.start()
    before = sup.wait_running("forked", 2)

    def fork_server() -> int:
        pid: int = sup.status()["supervisor"]["helpers"]["fork_server"]
        return pid

    server = fork_server()
    assert psutil.Process(server).cmdline()[0] == "supervisor: fork server"
    os.kill(server, signal.SIGKILL)
    wait_until(lambda: fork_server() not in (server, None), what="a new fork server")
    assert sup.pids("forked") == before
    os.kill(before[1], signal.SIGKILL)
    wait_until(lambda: sup.pids("forked").get(1, before[1]) != before[1], what="the replacement")
    assert sup.events("fork_server_exited")[0]["exit_code"] == -signal.SIGKILL
