"""A spawn that fails is retried when its delay ends, even when that delay is over before the
reconcile pass that made it looks for its next wake-up (the slot the 10-minute chaos storm
left in `starting`: it was due, and the bot slept until a poke that never came)."""

from __future__ import annotations

import os
import signal

from tests.integration.harness import Supervisor, wait_until


def test_a_failed_spawn_due_at_once_is_retried_until_the_crash_loop_fails_it(
    sup: Supervisor,
) -> None:
    """The program disappears under a running worker, which is then killed: its respawn
    fails, and with no backoff each retry is due before the pass ends. Every retry must
    still happen, until max_restarts fails the slot; before the fix the slot sat in
    `starting` after the first failed spawn, for good."""
    program = sup.dir / "prog.sh"
    program.write_text("#!/bin/sh\nexec sleep 1000\n")
    program.chmod(0o755)
    sup.configure(
        f'[bots.vanish]\ncommand = ["{program}"]\nworkers = 1\nready_after_s = 0\n'
        'backoff_initial_s = "0s"\nmax_restarts = 3\nrestart_window_s = "10m"\n'
    )
    sup.start()
    pid = sup.wait_running("vanish", 1)[0]
    program.unlink()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: sup.bot("vanish")["workers"][0]["state"] == "failed", 30, "the slot failed")
    failed_spawns = sup.events("worker_spawn_failed")
    assert len(failed_spawns) == 3, failed_spawns  # the exit, then 3 spawns: max_restarts 3
    assert [e["worker"] for e in sup.events("worker_failed")] == [0]
