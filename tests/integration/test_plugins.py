"""Plugins in a real supervisor: isolation, restart with backoff, hooks cut off, the host API."""

from __future__ import annotations

from tests.integration.harness import REPO, Supervisor, wait_until

SLEEPER = '[bots.s]\ncommand = ["sleep", "1000"]\nready_after_s = 0\n'


def test_a_plugin_that_raises_is_restarted_while_the_fleet_runs_on(sup: Supervisor) -> None:
    """A plugin whose run() raises is logged, shown as failed with its error, and started
    again with backoff; the bots are untouched."""
    sup.configure(
        SLEEPER
        + '\n[plugins.crashy]\nclass = "tests.plugins.sample:Crashy"\nfail_after_s = "50ms"\n'
    )
    sup.start()
    pid = sup.wait_running("s", 1)[0]
    wait_until(
        lambda: sup.status()["plugins"]["crashy"]["restarts"] >= 2, timeout_s=15, what="2 restarts"
    )
    plugin = sup.status()["plugins"]["crashy"]
    assert plugin["error"].startswith("RuntimeError: boom") or plugin["state"] == "running"
    assert plugin["runs"] >= 2
    failed = sup.events("plugin_failed")
    assert failed[0]["plugin"] == "crashy"
    assert failed[0]["error"] == "RuntimeError: boom 1"
    assert failed[1]["retry_in_s"] > failed[0]["retry_in_s"]  # backoff grows
    assert sup.pids("s") == {0: pid}
    assert sup.cli("status").returncode == 0


def test_a_hook_that_hangs_is_cut_off(sup: Supervisor) -> None:
    """An event hook that never returns is cut off after its time limit; events go on being
    delivered (or dropped, counted) and the supervisor stays responsive."""
    sup.configure(SLEEPER + '\n[plugins.stuck]\nclass = "tests.plugins.sample:Stuck"\n')
    sup.start()
    sup.wait_running("s", 1)
    for count in (2, 3, 2, 3):
        sup.request("scale", bot="s", count=count)
    wait_until(
        lambda: sup.status()["plugins"]["stuck"]["hook_timeouts"] >= 2,
        timeout_s=15,
        what="cut-offs",
    )
    status = sup.status()
    assert status["plugins"]["stuck"]["seen"] >= 2
    assert status["plugins"]["stuck"]["state"] == "running"
    assert sup.events("plugin_hook_cut_off")


def test_a_plugin_sends_config_to_workers(sup: Supervisor) -> None:
    """Through the host a plugin sends config to a bot's workers, which see it in the SDK."""
    sup.configure(
        f"""
[bots.w]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
workers = 2
env = {{ SDK_MODE = "config" }}

[plugins.pusher]
class = "tests.plugins.sample:Pusher"
bot = "w"
"""
    )
    sup.start()

    def green() -> bool:
        workers = sup.bot("w")["workers"]
        return len(workers) == 2 and all(w["metrics"].get("colour_is_green") == 1 for w in workers)

    wait_until(green, what="both workers to see the config")


def test_plugin_config_errors_name_their_key_path(sup: Supervisor) -> None:
    """An unknown plugin, an unknown key and a bad value in a plugin's table are config errors."""
    cases = {
        "[plugins.nope]\n": "supervisor: plugins.nope: unknown plugin; known: cache_warmer, db_tuning, monitor",
        '[plugins.crashy]\nclass = "tests.plugins.sample:Crashy"\nfail_after = 1\n': (
            'supervisor: plugins.crashy.fail_after: unknown key; did you mean "fail_after_s"?'
        ),
        '[plugins.crashy]\nclass = "tests.plugins.sample:Crashy"\nfail_after_s = "soon"\n': (
            "supervisor: plugins.crashy.fail_after_s: expected a duration"
        ),
        '[plugins.x]\nclass = "tests.plugins.nothere:X"\n': (
            'supervisor: plugins.x: cannot load "tests.plugins.nothere:X"'
        ),
    }
    for text, message in cases.items():
        sup.configure(SLEEPER + text)
        out = sup.cli("check")
        assert out.returncode == 2, text
        assert out.stderr.startswith(message), out.stderr
