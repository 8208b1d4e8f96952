"""The history on the monitor's web port: /api/history and /api/findings on a real fleet, the
`supervisor_findings` gauge, and the history page (charts and findings) in a real browser."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import REPO, Supervisor, chromium, wait_until

FLEET = f"""
[bots.echo]
module = "bots.echo:main"
cwd = "{REPO}"
workers = 2

[bots.crashy]
command = ["sh", "-c", "exit 3"]
backoff_initial_s = "100ms"

[plugins.monitor]
listen = "127.0.0.1:0"
interval_s = "250ms"
"""


def base(sup: Supervisor) -> str:
    address = wait_until(lambda: sup.status()["plugins"]["monitor"]["listen"], what="the monitor")
    return f"http://{address}"


def get(sup: Supervisor, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(base(sup) + path, timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if "json" in r.headers["Content-Type"] else body
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_history_and_findings_apis_and_the_gauge(sup: Supervisor) -> None:
    sup.configure(FLEET)
    sup.start()
    sup.wait_running("echo", 2)

    def two_workers() -> dict[str, Any] | None:
        status, data = get(sup, "/api/history?metric=cpu_percent&since=5m&bot=echo")
        ok = status == 200 and {"echo:0", "echo:1"} <= set(data["series"])
        return data if ok and all(len(p) >= 2 for p in data["series"].values()) else None

    data = wait_until(two_workers, 30, "two workers' CPU in the history")
    assert data["metric"] == "cpu_percent"
    ts = [t for t, _ in data["series"]["echo:0"]]
    assert ts == sorted(ts)

    def crash_loop_found() -> bool:
        status, data = get(sup, "/api/findings?since=5m")
        return status == 200 and any(
            f["rule"] == "restart_hot_spot" and f["bot"] == "crashy" for f in data["findings"]
        )

    wait_until(crash_loop_found, 60, "the crash loop among the findings")
    assert get(sup, "/api/history?since=1h")[0] == 400  # no metric
    assert get(sup, "/api/history?metric=x&since=soon")[0] == 400

    def gauge() -> float:
        _, body = get(sup, "/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == "supervisor_findings" and s.labels == {"severity": "critical"}:
                    return float(s.value)
        return 0.0

    assert wait_until(gauge, 120, "a critical finding on /metrics") >= 1


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (.ci/run installs it)"
)
def test_history_page_in_a_real_browser(sup: Supervisor, tmp_path: Path) -> None:
    """In headless Chromium the history page draws its charts from the store and lists the
    findings; the live dashboard links to it."""
    from playwright.sync_api import sync_playwright

    sup.configure(FLEET)
    sup.start()
    sup.wait_running("echo", 2)
    wait_until(lambda: get(sup, "/api/history?metric=rss_mb&since=5m")[1]["series"], 30, "samples")
    with sync_playwright() as p:
        browser = chromium(p)
        try:
            page = browser.new_page()
            page.goto(base(sup) + "/")
            page.click("#history-link")
            page.wait_for_url("**/history")
            # A steady RSS draws a flat line: its box has no height, which Playwright calls
            # hidden, so wait for the line to be drawn (attached, with points), not "visible".
            line = 'svg.chart[data-metric="rss_mb"] polyline[data-name="echo:0"]'
            page.wait_for_selector(line, state="attached", timeout=30_000)
            assert page.locator(line).get_attribute("points")
            page.wait_for_function(
                """() => Number(document.querySelector('svg.chart[data-metric="cpu_percent"]')
                           ?.dataset.series) >= 2""",
                timeout=30_000,
            )
            # The window can be changed; the findings panel shows the crash loop.
            page.select_option("#since", "15m")
            page.wait_for_selector('.finding[data-rule="restart_hot_spot"][data-bot="crashy"]',
                                   timeout=60_000)  # fmt: skip
            assert "bots.crashy." in page.locator(".finding.critical .set").first.inner_text()
            page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
        finally:
            browser.close()
