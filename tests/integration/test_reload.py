"""Reload: a diff of the config applied to a running fleet, touching only what changed."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from tests.integration.harness import REPO, Supervisor, wait_until


def sleepers(name: str, workers: int = 2, arg: str = "1000", extra: str = "") -> str:
    return f"""
[bots.{name}]
command = ["sleep", "{arg}"]
workers = {workers}
ready_after_s = 0
stop_timeout_s = "2s"
{extra}
"""


def test_reload_touches_exactly_the_bots_it_should(sup: Supervisor) -> None:
    """keep: unchanged (same pids); gone: stopped; scaled: 2 -> 3 workers, the first two
    untouched; changed: a new command, so every worker is replaced; new: started."""
    sup.configure(sleepers("keep") + sleepers("gone") + sleepers("scaled") + sleepers("changed"))
    sup.start()
    before = {name: sup.wait_running(name, 2) for name in ("keep", "gone", "scaled", "changed")}

    sup.configure(
        sleepers("keep")
        + sleepers("scaled", workers=3)
        + sleepers("changed", arg="2000")
        + sleepers("new", workers=1)
    )
    result = sup.cli("reload")
    assert result.returncode == 0, result.stderr
    assert "started: new" in result.stdout
    assert "stopped: gone" in result.stdout
    assert "rolling restart: changed" in result.stdout
    assert "updated in place: scaled" in result.stdout
    assert "untouched: keep" in result.stdout

    assert "gone" not in sup.status()["bots"]
    assert all(not _alive(pid) for pid in before["gone"].values())
    sup.wait_running("new", 1)
    scaled = sup.wait_running("scaled", 3)
    assert {k: scaled[k] for k in (0, 1)} == before["scaled"]

    def replaced() -> dict[int, int] | None:
        pids = sup.pids("changed")
        fresh = len(pids) == 2 and not set(pids.values()) & set(before["changed"].values())
        return pids if fresh else None

    changed = wait_until(replaced, timeout_s=20, what="changed to be replaced")
    assert len(changed) == 2
    assert sup.pids("keep") == before["keep"]
    wait_until(lambda: sup.events("bot_rolling_restart_done"), what="the roll to end")
    # Order in status is the new file's order.
    assert list(sup.status()["bots"]) == ["keep", "scaled", "changed", "new"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_bad_file_changes_nothing(sup: Supervisor) -> None:
    sup.configure(sleepers("a"))
    sup.start()
    before = sup.wait_running("a", 2)
    good = sup.config_path.read_text()
    sup.config_path.write_text(good.replace("workers = 2", 'workers = "two"') + "[bots.b]\n")
    result = sup.cli("reload")
    assert result.returncode != 0
    assert 'bots.a.workers: expected an integer >= 0, got "two"' in result.stderr
    assert "bots.b" in result.stderr
    assert sup.pids("a") == before
    assert list(sup.status()["bots"]) == ["a"]
    assert sup.events("reload_failed")
    # SIGHUP with the same bad file: also nothing, and the supervisor lives on.
    sup.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_until(lambda: len(sup.events("reload_failed")) == 2, what="a second reload_failed")
    assert sup.pids("a") == before


def test_sighup_reloads_and_starts_the_fork_server_when_first_needed(sup: Supervisor) -> None:
    sup.configure(sleepers("a", workers=1))
    sup.start()
    sup.wait_running("a", 1)
    assert sup.status()["supervisor"]["helpers"]["fork_server"] is None
    module_bot = f'[bots.b]\nmodule = "tests.bots.sdk:main"\ncwd = "{REPO}"\n'
    sup.configure(sleepers("a", workers=1) + module_bot)
    sup.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    wait_until(lambda: "b" in sup.status()["bots"], what="the reload")  # SIGHUP is asynchronous
    sup.wait_running("b", 1)
    assert sup.status()["supervisor"]["helpers"]["fork_server"] is not None


def test_a_rolling_restart_keeps_all_but_one_ready(sup: Supervisor) -> None:
    """`restart BOT --rolling` on 4 SDK workers that take a moment to get ready: a sampler
    sees never fewer than 3 ready, and every worker is new at the end."""
    sup.configure(
        f"""
[bots.slowstart]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
workers = 4
readiness = "sdk"
env = {{ SDK_MODE = "idle", SDK_HELLO_AFTER_S = "0.5" }}
stop_timeout_s = "2s"
"""
    )
    sup.start()
    before = sup.wait_running("slowstart", 4)
    lowest = [4]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            bot = sup.bot("slowstart")
            lowest[0] = min(lowest[0], bot["ready"])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = sup.cli("restart", "slowstart", "--rolling")
    finally:
        done.set()
        sampler.join()
    assert result.returncode == 0, result.stderr
    after = sup.pids("slowstart")
    assert len(after) == 4
    assert not set(after.values()) & set(before.values())
    assert lowest[0] == 3


def test_depends_on_starts_in_order_and_stops_in_reverse(sup: Supervisor) -> None:
    """web depends on db, which takes a second to be ready: web starts only after db is
    ready, and at shutdown web stops before db."""
    sup.configure(
        f"""
[bots.web]
command = ["sleep", "1000"]
ready_after_s = 0
depends_on = ["db"]

[bots.db]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
readiness = "sdk"
env = {{ SDK_MODE = "idle", SDK_HELLO_AFTER_S = "1" }}
"""
    )
    sup.start()
    sup.wait_running("web", 1, timeout_s=20)
    ready = {e["bot"]: e["timestamp"] for e in sup.events("worker_ready")}
    spawned = {e["bot"]: e["timestamp"] for e in sup.events("worker_spawned")}
    assert spawned["web"] >= ready["db"]
    assert sup.events("bot_waiting")[0]["depends_on"] == ["db"]
    sup.request("shutdown")
    sup.wait_exit()
    exits = [e["bot"] for e in sup.events("worker_exited")]
    assert exits.index("web") < exits.index("db")


def test_a_dependency_cycle_is_rejected_with_its_path(tmp_path: Path) -> None:
    config = tmp_path / "supervisor.toml"
    config.write_text(
        "\n".join(
            f'[bots.{n}]\ncommand = ["true"]\ndepends_on = ["{d}"]\n'
            for n, d in (("a", "b"), ("b", "c"), ("c", "a"))
        )
        + '[bots.d]\ncommand = ["true"]\ndepends_on = ["nope"]\n'
    )
    sup = Supervisor()
    try:
        sup.config_path = config
        result = sup.cli("check")
    finally:
        sup.cleanup()
    assert result.returncode == 2
    assert "bots.a.depends_on: a cycle: a -> b -> c -> a" in result.stderr
    assert 'bots.d.depends_on: no bot "nope"' in result.stderr


def test_reload_adds_an_autoscaled_bot_and_a_plugin(sup: Supervisor) -> None:
    sup.configure(sleepers("a", workers=1))
    sup.start()
    sup.wait_running("a", 1)
    sup.configure(
        sleepers("a", workers=1)
        + sleepers("auto", workers=2)
        + '[bots.auto.scale]\nmin = 2\nmax = 3\nmetric = "cpu"\ntarget = 90\n'
        + '\n[plugins.monitor]\nlisten = ""\n'
    )
    assert sup.cli("reload").returncode == 0
    sup.wait_running("auto", 2)
    status = sup.status()
    assert status["bots"]["auto"]["mode"] == "auto"
    assert status["bots"]["auto"]["scale"]["min"] == 2
    wait_until(lambda: sup.status()["plugins"]["monitor"]["state"] == "running", what="monitor")
