"""As PID 1 of a pid namespace (a container's init): an orphaned grandchild that exits is
reaped (no zombie is left), forked workers are adopted, SIGUSR1 reaches every worker, and
SIGTERM stops the fleet cleanly.

The supervisor runs under `unshare --pid --fork --mount-proc`. The harness's `status()` is not
used here: it records worker pids, and pids inside the namespace are not the host's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.integration.harness import Supervisor, wait_until

# --kill-child: if the test ends unshare, its child (the supervisor) gets SIGTERM, not nothing.
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _can_unshare(), reason="needs unshare --pid (root)")


def ns_pid(pid: int) -> int:
    """The pid a process has inside its own (innermost) pid namespace."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {pid}")


def namespace_processes(init: psutil.Process) -> list[psutil.Process]:
    return [init, *init.children(recursive=True)]


def zombies(init: psutil.Process) -> list[int]:
    found = []
    for p in namespace_processes(init):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                found.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_as_pid_1_orphans_are_reaped_signals_reach_workers_and_sigterm_stops(
    sup: Supervisor,
) -> None:
    """A worker's grandchild is orphaned (its parent exits), adopted by the supervisor,
    and exits: it is reaped and no zombie remains in the namespace. SIGUSR1 sent to PID 1
    reaches a worker; SIGTERM to PID 1 (which the kernel drops unless handled) stops all."""
    gate = sup.dir / "gate"
    # parent ignores SIGUSR1 (and so do its sleep and orphan): forwarding must not end it.
    sup.configure(
        f"""
[bots.parent]
command = ["sh", "-c", "trap '' USR1; (exec sh -c 'while [ ! -e {gate} ]; do sleep 0.01; done; exit 3' &); exec sleep 1000"]
ready_after_s = 0

[bots.forked]  # forked by the fork server, adopted by PID 1 like any orphan
module = "tests.bots.numbered:main"
env = {{ COUNT = "1" }}
ready_after_s = 0

[bots.listener]
command = ["sh", "-c", "trap 'echo got usr1' USR1; echo listening; while :; do sleep 0.01; done"]
ready_after_s = 0
stop_timeout_s = "5s"
"""
    )
    sup.start(wrap=UNSHARE)
    unshare = psutil.Process(sup.pid)
    init = wait_until(unshare.children, what="the supervisor under unshare")[0]
    assert ns_pid(init.pid) == 1

    def orphan() -> psutil.Process | None:
        for p in init.children(recursive=True):
            try:
                if str(gate) in " ".join(p.cmdline()) and p.ppid() == init.pid:
                    return p
            except psutil.NoSuchProcess:
                continue
        return None

    adopted = wait_until(orphan, what="the grandchild to be orphaned and adopted by PID 1")
    running = lambda: sup.request("status")["bots"]  # noqa: E731
    wait_until(lambda: all(b["state"] == "running" for b in running().values()), what="bots up")

    forked = [p for p in init.children() if "supervisor: forked[0]" in " ".join(p.cmdline())]
    assert len(forked) == 1  # a direct child of PID 1, though the fork server forked it

    gate.touch()  # the orphan exits on its own now
    wait_until(lambda: not os.path.exists(f"/proc/{adopted.pid}"), what="the orphan to be reaped")
    wait_until(lambda: not zombies(init), what="no zombie in the namespace")
    assert running()["parent"]["restarts"] == 0  # its exit was no worker's exit

    listener = sup.run_dir / "logs" / "listener" / "0.log"
    wait_until(lambda: listener.exists() and "listening" in listener.read_text(), what="trap set")
    os.kill(init.pid, signal.SIGUSR1)
    wait_until(lambda: "got usr1" in listener.read_text(), what="SIGUSR1 forwarded")
    wait_until(lambda: running()["forked"]["restarts"] == 1, what="forked to die of SIGUSR1")
    wait_until(lambda: running()["forked"]["state"] == "running", what="forked back")

    os.kill(init.pid, signal.SIGTERM)
    assert sup.wait_exit() == 0
    assert sup.events("supervisor_stopped")
    exits = sup.events("worker_exited")
    # SIGUSR1 reached every worker: those that ignore or trap it ran on to the end; the
    # forked Python worker, which does neither, died of it and was restarted.
    assert sorted((e["bot"], e["signal"], e["expected"]) for e in exits) == [
        ("forked", 10, False), ("forked", 15, True), ("listener", 15, True), ("parent", 15, True)
    ]  # fmt: skip
