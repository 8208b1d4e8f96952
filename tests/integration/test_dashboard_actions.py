"""Dashboard actions: only behind a token, with a CSRF token, by role, each one audited."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Supervisor, chromium, wait_until
from tests.integration.test_monitor import ECHO, MONITOR, url

OPS_TOKEN = "ops-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"


def with_tokens(tmp_path: Path) -> str:
    tokens = []
    for name, role, secret in (("ops", "operate", OPS_TOKEN), ("viewer", "read", VIEWER_TOKEN)):
        path = tmp_path / f"{name}.token"
        path.write_text(secret + "\n")
        os.chmod(path, 0o600)
        tokens.append(f'{name} = {{ role = "{role}", token_file = "{path}" }}')
    return MONITOR + f"tokens = {{ {', '.join(tokens)} }}\n"


def post(
    sup: Supervisor, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """(status, JSON body, Set-Cookie) of a POST."""
    request = urllib.request.Request(
        url(sup, path), data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read()), r.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), ""


def login(sup: Supervisor, token: str) -> dict[str, str]:
    """The headers of a signed-in client: its cookie and CSRF token."""
    status, data, cookie = post(sup, "/api/login", {"token": token})
    assert status == 200, data
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    return {"Cookie": cookie.split(";", 1)[0], "X-CSRF-Token": data["csrf"]}


def test_without_tokens_the_dashboard_is_read_only(sup: Supervisor) -> None:
    """No tokens configured: logins and actions are refused; the probes stay open."""
    sup.configure(ECHO + MONITOR)
    sup.start()
    sup.wait_running("echo", 2)
    assert post(sup, "/api/login", {"token": OPS_TOKEN})[0] == 403
    status, data, _ = post(sup, "/api/action", {"action": "restart", "bot": "echo"})
    assert status == 403
    assert "read-only" in data["error"]
    assert sup.bot("echo")["restarts"] == 0


def test_roles_csrf_and_audit_over_http(sup: Supervisor, tmp_path: Path) -> None:
    """A wrong token cannot sign in; a read token is refused a restart naming `operate`; the
    right token without or with a wrong CSRF token is refused; /metrics and probes need none."""
    sup.configure(ECHO + with_tokens(tmp_path))
    sup.start()
    before = sup.wait_running("echo", 2)
    assert post(sup, "/api/login", {"token": "not-a-token-at-all"})[0] == 401
    action = {"action": "restart_worker", "bot": "echo", "worker": 1}
    assert post(sup, "/api/action", action)[0] == 401  # no session
    viewer = login(sup, VIEWER_TOKEN)
    status, data, _ = post(sup, "/api/action", action, viewer)
    assert (status, data["code"]) == (403, "forbidden")
    assert "operate" in data["error"]
    ops = login(sup, OPS_TOKEN)
    assert post(sup, "/api/action", action, {"Cookie": ops["Cookie"]})[0] == 403
    assert post(sup, "/api/action", action, {**ops, "X-CSRF-Token": "forged"})[0] == 403
    evil = {**ops, "Origin": "http://evil.example"}
    assert post(sup, "/api/action", action, evil)[0] == 403
    assert sup.pids("echo") == before  # nothing was restarted so far
    status, data, _ = post(sup, "/api/action", {"action": "pin", "bot": "echo", "count": 3}, ops)
    assert status == 200, data
    sup.wait_running("echo", 3)
    assert sup.bot("echo")["mode"] == "pinned"
    outcomes = [(e["client"], e["action"], e["outcome"]) for e in sup.events("dashboard_action")]
    assert outcomes == [
        ("viewer", "restart_worker", "forbidden"),
        ("ops", "restart_worker", "bad_csrf"),
        ("ops", "restart_worker", "bad_csrf"),
        ("ops", "restart_worker", "bad_csrf"),
        ("ops", "pin", "accepted"),
    ]
    for path in ("/metrics", "/healthz", "/readyz"):
        with urllib.request.urlopen(url(sup, path), timeout=5) as r:
            assert r.status == 200


def test_listening_beyond_loopback_without_tokens_warns(sup: Supervisor) -> None:
    """An open dashboard on a non-loopback address says so at start-up."""
    sup.configure(ECHO + MONITOR.replace("127.0.0.1:0", "0.0.0.0:0"))
    sup.start()
    wait_until(lambda: sup.events("monitor_unauthenticated"), what="the warning")


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium (.ci/run installs it)"
)
def test_actions_clicked_in_a_real_browser(sup: Supervisor, tmp_path: Path) -> None:
    """In Chromium: no buttons before sign-in and a direct POST is refused; after signing in,
    clicking "restart worker" restarts that worker, and a request with a forged CSRF token
    from the page is refused."""
    from playwright.sync_api import sync_playwright

    sup.configure(ECHO + with_tokens(tmp_path))
    sup.start()
    before = sup.wait_running("echo", 2)
    with sync_playwright() as p:
        browser = chromium(p)
        try:
            page = browser.new_page()
            page.goto(url(sup, "/"))
            page.wait_for_selector("#actions #sign-in", timeout=10_000)
            assert page.locator("button[data-action]").count() == 0
            unsigned = page.evaluate(
                """() => fetch('/api/action', {method: 'POST', headers: {'Content-Type':
                   'application/json'}, body: JSON.stringify({action: 'restart', bot: 'echo'})})
                   .then(r => r.status)"""
            )
            assert unsigned == 401
            page.fill("#token", OPS_TOKEN)
            page.click("#sign-in")
            target = 'button[data-action="restart_worker"][data-target="echo:1"]'
            page.wait_for_selector(target, timeout=10_000)
            forged = page.evaluate(
                """() => fetch('/api/action', {method: 'POST', headers: {'Content-Type':
                   'application/json', 'X-CSRF-Token': 'forged'}, body: JSON.stringify(
                   {action: 'restart_worker', bot: 'echo', worker: 1})}).then(r => r.status)"""
            )
            assert forged == 403
            assert sup.pids("echo") == before
            page.click(target)
            page.wait_for_selector('#action-result[data-status="200"]', timeout=30_000)
            wait_until(
                lambda: (p := sup.pids("echo")).get(1) not in (None, before[1]) and p,
                what="worker 1 restarted",
            )
            assert sup.pids("echo")[0] == before[0]
            page.screenshot(path=str(tmp_path / "actions.png"), full_page=True)
        finally:
            browser.close()
    accepted = [e for e in sup.events("dashboard_action") if e["outcome"] == "accepted"]
    assert [(e["client"], e["action"], e["bot"]) for e in accepted] == [
        ("ops", "restart_worker", "echo")
    ]
