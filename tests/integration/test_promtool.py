"""Prometheus's own linter accepts our /metrics (names, units, help, types)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.integration.harness import Supervisor, wait_until
from tests.integration.test_monitor import ECHO, fetch

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (Debian's prometheus; .ci/run)")
def test_promtool_check_metrics_passes(sup: Supervisor) -> None:
    """`promtool check metrics` finds nothing to flag, with every family present (the fitted
    memory growth too, which needs a trend window's worth of samples)."""
    assert PROMTOOL is not None
    sup.configure(
        ECHO + '\n[plugins.monitor]\nlisten = "127.0.0.1:0"\ninterval_s = "100ms"\n'
        'trend_window_s = "2s"\n'
    )
    sup.start()
    sup.wait_running("echo", 2)

    def scraped_with_growth() -> bytes | None:
        body = fetch(sup, "/metrics")
        return body if b"supervisor_worker_memory_growth_bytes_per_second{" in body else None

    body = wait_until(scraped_with_growth, what="a fitted memory growth in /metrics")
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    assert b"mb_per_hour" not in body
