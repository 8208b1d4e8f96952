"""`kill -QUIT`: the supervisor writes where its threads and tasks are, and keeps running."""

from __future__ import annotations

from tests.integration.harness import Supervisor, pid_alive

BOT = """
[bots.idle]
command = ["sleep", "1000"]
workers = 3
ready_after_s = 0
"""


def test_sigquit_dumps_threads_and_tasks_and_the_fleet_runs_on(sup: Supervisor) -> None:
    sup.configure(BOT)
    sup.start()
    pids = sup.wait_running("idle", 3)
    dump = sup.stacks()
    assert "Current thread" in dump  # faulthandler: every thread, even with a blocked loop
    assert "supervisor tasks (" in dump
    assert "in _serve_control" in dump  # the tasks' own frames, not only anyio's wrapper
    assert pid_alive(sup.pid)
    assert sup.pids("idle") == pids
    sup.request("shutdown")
    assert sup.wait_exit() == 0
