"""Start-up and idle: what `supervisor run` loads before its first spawn, and the timers that
sleep while nothing needs them still wake when something does."""

from __future__ import annotations

from pathlib import Path

from tests.integration.harness import REPO, Supervisor, pid_alive, wait_until

EXEC_BOT = """
[bots.plain]
command = ["sleep", "1000"]
workers = 2
"""
HEAVY = {"psutil", "prometheus_client", "psycopg", "redis", "croniter"}  # packages


def _modules_at_first_spawn(sup: Supervisor) -> set[str]:
    listing = sup.dir / "modules"
    sup.start(env={"SUPERVISOR_DEBUG_MODULES_AT_SPAWN": str(listing)})
    sup.wait_running("plain", 2)
    return set(Path(listing).read_text().split())


def test_an_exec_fleet_without_plugins_imports_no_plugin_library_before_its_first_spawn(
    sup: Supervisor,
) -> None:
    """Exec bots only, no plugins and no schedule: psutil, prometheus_client, psycopg, redis,
    croniter and the plugin loader's importlib.metadata are not loaded when the first worker
    is spawned (the listing is the daemon's own sys.modules, taken in Child.spawn)."""
    sup.configure(EXEC_BOT)
    modules = _modules_at_first_spawn(sup)
    assert {"supervisor.daemon.process", "anyio"} <= modules  # the daemon's, at a spawn
    assert not {m for m in modules if m.split(".")[0] in HEAVY}
    assert not modules & {"importlib.metadata", "supervisor.plugins.loader"}
    assert "SUPERVISOR_DEBUG_MODULES_AT_SPAWN" not in _environ(sup.pids("plain")[0])


def test_a_cron_schedule_still_loads_croniter(sup: Supervisor) -> None:
    """The lazy import is not a missing one: a fleet with a cron schedule has croniter by its
    first spawn (the schedule's next tick was computed with it)."""
    sup.configure(EXEC_BOT + '\n[bots.nightly]\ncommand = ["true"]\nschedule = "0 3 * * *"\n')
    assert "croniter" in _modules_at_first_spawn(sup)


def test_an_sdk_bot_added_by_a_reload_to_an_idle_fleet_is_watched(sup: Supervisor) -> None:
    """With only exec bots the watchdog does not tick; a reload that brings an SDK bot whose
    loop blocks wakes it, and the silent worker is killed and replaced."""
    sup.configure(EXEC_BOT)
    sup.start()
    sup.wait_running("plain", 2)
    sup.configure(
        EXEC_BOT
        + f"""
[bots.stuck]
module = "tests.bots.sdk:main"
cwd = "{REPO}"
heartbeat_timeout_s = "1s"
stop_timeout_s = "200ms"
backoff_initial_s = "50ms"
env = {{ SDK_MODE = "block" }}
"""
    )
    sup.request("reload")
    first = sup.wait_running("stuck", 1)[0]
    wait_until(lambda: sup.events("worker_unresponsive"), timeout_s=15, what="the watchdog")
    wait_until(lambda: not pid_alive(first), what="the stuck worker to die")
    wait_until(lambda: sup.pids("stuck").get(0, first) != first, what="a new worker")


def _environ(pid: int) -> set[str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return {item.split(b"=", 1)[0].decode() for item in raw.split(b"\0") if item}
