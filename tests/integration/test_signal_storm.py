"""Signals are not lost, and the process does not hang, when thousands arrive while the loop
is busy (daemon/signals.py): a storm of SIGUSR1 fills the wake-up socket, then a SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.integration.harness import REPO

_WAIT_S = 30.0


def _lines(proc: subprocess.Popen[str], into: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.put(line.strip())


def test_a_sigterm_after_the_wake_up_socket_filled_still_runs_its_handler(tmp_path: Path) -> None:
    go = tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests/bots/signal_storm.py"), "ours", str(go)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    said: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc, said), daemon=True).start()
    try:
        assert said.get(timeout=_WAIT_S) == "busy"
        sent = 0
        while said.empty():  # until it says "full": each SIGUSR1 now finds its own byte gone
            os.kill(proc.pid, signal.SIGUSR1)
            sent += 1
            assert sent < 1_000_000, "the wake-up socket never filled"
        assert said.get(timeout=_WAIT_S) == "full"
        os.kill(proc.pid, signal.SIGTERM)
        go.touch()
        assert said.get(timeout=_WAIT_S) == "free"
        last = said.get(timeout=_WAIT_S)
        assert last.startswith("terminated"), last
        assert int(last.split("usr1=")[1]) >= 1  # the storm was handled too, merged
        assert proc.wait(timeout=_WAIT_S) == 0
        assert proc.stderr is not None
        assert "wakeup fd" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
