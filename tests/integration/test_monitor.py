"""The monitor plugin in a real supervisor: alerts that recycle a leaking worker, /metrics
that agrees with status, the dashboard in a real browser, and `supervisor top`."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import REPO, Supervisor, chromium, wait_until

MONITOR = '\n[plugins.monitor]\nlisten = "127.0.0.1:0"\ninterval_s = "250ms"\n'
ECHO = f'[bots.echo]\nmodule = "bots.echo:main"\ncwd = "{REPO}"\nworkers = 2\n'


def url(sup: Supervisor, path: str) -> str:
    address = wait_until(lambda: sup.status()["plugins"]["monitor"]["listen"], what="the monitor")
    return f"http://{address}{path}"


def fetch(sup: Supervisor, path: str) -> bytes:
    with urllib.request.urlopen(url(sup, path), timeout=5) as response:
        body: bytes = response.read()
        return body


def test_a_leaking_worker_fires_the_alert_and_is_recycled(sup: Supervisor) -> None:
    """A bot whose memory grows steadily fires a memory-growth alert, and its restart action
    recycles that worker; the alert shows in status while firing."""
    sup.configure(
        f"""
[bots.leaky]
module = "tests.bots.leak:main"
cwd = "{REPO}"
env = {{ LEAK_MB_PER_S = "8" }}

[plugins.monitor]
listen = ""
interval_s = "200ms"
trend_window_s = "3s"

[[plugins.monitor.alerts]]
name = "leak"
metric = "rss_growth_mb_per_h"
bots = "leak*"
above = 3600
for_s = "1s"
action = "restart"
"""
    )
    sup.start()
    first = sup.wait_running("leaky", 1)[0]
    firing = wait_until(lambda: sup.events("alert_firing"), timeout_s=30, what="the leak alert")[0]
    assert (firing["alert"], firing["bot"], firing["pid"]) == ("leak", "leaky", first)
    assert firing["value"] > 3600
    recycled = wait_until(lambda: sup.events("worker_recycled"), timeout_s=15, what="the recycle")[
        0
    ]
    assert recycled["reason"].startswith("alert leak: rss_growth_mb_per_h")
    wait_until(lambda: sup.pids("leaky").get(0, first) != first, what="a new worker")
    assert sup.status()["plugins"]["monitor"]["alerts_fired"] >= 1


def test_metrics_parse_and_agree_with_status(sup: Supervisor) -> None:
    """/metrics parses with prometheus_client's parser and its numbers match status."""
    sup.configure(
        ECHO + '[bots.s]\ncommand = ["sleep", "1000"]\nready_after_s = 0\nworkers = 3\n' + MONITOR
    )
    sup.start()
    sup.wait_running("echo", 2)
    sup.wait_running("s", 3)
    wait_until(lambda: sup.status()["plugins"]["monitor"]["processes_sampled"] >= 6, what="samples")
    wait_until(
        lambda: "beats" in sup.bot("echo")["workers"][0]["metrics"], what="a reported metric"
    )
    status = sup.status()  # then the scrape: counters there can only be ahead of status
    families = {f.name: f for f in text_string_to_metric_families(fetch(sup, "/metrics").decode())}

    def value(family: str, **labels: str) -> float:
        for s in families[family].samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
        raise AssertionError(f"no {family} {labels}")

    for name, bot in status["bots"].items():
        assert value("supervisor_bot_desired_workers", bot=name) == bot["desired"]
        assert value("supervisor_bot_ready_workers", bot=name) == bot["ready"]
        assert value("supervisor_worker_restarts", bot=name) == bot["restarts"]
        assert value("supervisor_workers", bot=name, state="running") == len(bot["workers"])
        for w in bot["workers"]:
            rss = value("supervisor_worker_resident_memory_bytes", bot=name, worker=str(w["slot"]))
            assert 0.5 * w["rss_bytes"] <= rss <= 2 * w["rss_bytes"]
    assert value("supervisor_ipc_messages") >= status["supervisor"]["workers"]["messages"]
    assert value("supervisor_plugin_up", plugin="monitor") == 1
    assert "process_cpu_seconds" in families
    beats = status["bots"]["echo"]["workers"][0]["metrics"]["beats"]
    assert value("supervisor_worker_metric", bot="echo", worker="0", name="beats") >= beats
    with urllib.request.urlopen(url(sup, "/readyz"), timeout=5) as r:
        assert r.status == 200


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (.ci/run installs it)"
)
def test_dashboard_in_a_real_browser(sup: Supervisor, tmp_path: Path) -> None:
    """In headless Chromium the dashboard loads, lists the bots, and updates after a scale."""
    from playwright.sync_api import sync_playwright

    sup.configure(ECHO + MONITOR)
    sup.start()
    sup.wait_running("echo", 2)
    address = url(sup, "/")
    with sync_playwright() as p:
        browser = chromium(p)
        try:
            page = browser.new_page()
            page.goto(address)
            page.wait_for_selector('tr.bot[data-bot="echo"]', timeout=10_000)
            assert page.locator('tr.bot[data-bot="echo"] .desired').inner_text() == "2"
            assert page.locator('tr.worker[data-worker="echo:1"]').count() == 1
            assert page.locator('li[data-plugin="monitor"] .state').inner_text() == "running"
            assert sup.cli("scale", "echo", "3").returncode == 0
            page.wait_for_selector('tr.worker[data-worker="echo:2"]', timeout=10_000)
            page.wait_for_function(
                """() => document.querySelector('tr.bot[data-bot="echo"] .desired').textContent === "3"
                      && document.querySelectorAll('#scaling li.decision').length > 0""",
                timeout=10_000,
            )
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()


def test_top_renders_in_a_pseudo_terminal(sup: Supervisor) -> None:
    """`supervisor top` draws the fleet in a terminal and redraws it every second."""
    sup.configure(ECHO)
    sup.start()
    sup.wait_running("echo", 2)
    pid, fd = pty.fork()
    if pid == 0:  # the child: become `supervisor top` on the terminal
        # As a terminal gives it: a suite started in the background (`make test &`, CI) runs
        # with SIGINT ignored, and Python then leaves ^C ignored, so top never ended on it.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execv(sys.executable, [sys.executable, "-m", "supervisor", "top", "--interval", "0.2",
                                  "-c", str(sup.config_path)])  # fmt: skip
    screen = b""
    try:
        deadline = time.monotonic() + 60
        while screen.count(b"\x1b[2J") < 4 and time.monotonic() < deadline:
            screen += _read_some(fd)
    finally:
        os.kill(pid, signal.SIGINT)
        _reap_draining(pid, fd)
        os.close(fd)
    assert screen.count(b"\x1b[2J") >= 4  # it keeps redrawing
    # The last frame may be cut off where we stopped reading: look at the one before it.
    last = screen.split(b"\x1b[2J")[-2].decode(errors="replace")
    assert "workers 2  ready 2/2" in last
    assert "echo:0" in last
    assert "echo:1" in last


def _read_some(fd: int) -> bytes:
    """What the terminal has for us within half a second (b"" if nothing, or it closed)."""
    ready, _, _ = select.select([fd], [], [], 0.5)
    try:
        return os.read(fd, 65536) if ready else b""
    except OSError:  # EIO: the child closed the terminal
        return b""


def _reap_draining(pid: int, fd: int) -> None:
    """Wait for the child, reading its terminal meanwhile: a child blocked writing to a full
    terminal would never get to exit. SIGKILL after 30 s, so the wait stays bounded."""
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        _read_some(fd)
