"""The analyzer on a real fleet: a CPU-burning bot held at its autoscaling max, a leaking bot, a
crash-looping bot and an SDK bot flooding metrics while the supervisor is behind. `analyze
--json` names each problem with the right bot; the history survives a supervisor restart; a
baseline saved before a config change that fixes the leak shows the improvement after it.

Every wait polls a condition with a bound; nothing sleeps a guessed time.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from supervisor.history import store
from tests.integration.harness import REPO, Supervisor, wait_until


def fleet(leak_mb_per_s: float, mark: Path) -> str:
    return f"""
[bots.burner]
module = "tests.bots.burn:main"
cwd = "{REPO}"

[bots.burner.scale]
min = 1
max = 1
metric = "cpu"
target = 1  # percent of a core: a burner is far above it, however busy the host

[bots.leaky]
module = "tests.bots.leak:main"
cwd = "{REPO}"
env = {{ LEAK_MB_PER_S = "{leak_mb_per_s}" }}

[bots.crashy]
command = ["sh", "-c", "exit 3"]
backoff_initial_s = "100ms"

[bots.flood]
module = "tests.bots.flood:main"
cwd = "{REPO}"
env = {{ FLOOD_MARK = "{mark}" }}

[plugins.monitor]
listen = ""
interval_s = "500ms"
"""


def analyze(sup: Supervisor, *args: str) -> tuple[int, dict[str, Any]]:
    r = sup.cli("analyze", "--json", *args, timeout_s=120)
    assert r.returncode in (0, 1), r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return r.returncode, data


WANTED = {
    ("pinned_at_max", "burner"),
    ("memory_growth", "leaky"),
    ("restart_hot_spot", "crashy"),
    ("ipc_drops", "flood"),
}


@pytest.mark.timeout(600)  # a fleet of four for about two minutes, on a shared machine
def test_analyze_names_each_problem_and_a_fix_shows_in_the_comparison(sup: Supervisor) -> None:
    mark = sup.dir / "flood-shed"
    sup.configure(fleet(2.0, mark))
    sup.start()
    for bot in ("burner", "leaky", "flood"):
        sup.wait_running(bot, 1, timeout_s=30)

    # The supervisor falls behind (stopped), so the flooding bot's SDK buffer overflows.
    os.kill(sup.pid, signal.SIGSTOP)
    try:
        wait_until(mark.exists, 60, "the flood bot's SDK to shed metrics")
    finally:
        os.kill(sup.pid, signal.SIGCONT)

    found: dict[tuple[str, str], dict[str, Any]] = {}

    def all_named() -> bool:
        code, data = analyze(sup, "--since", "10m")
        found.clear()
        found.update({(f["rule"], f["bot"]): f for f in data["findings"]})
        return set(found) >= WANTED and code == 1  # the crash loop is critical

    try:
        wait_until(all_named, 150, f"analyze to name {sorted(WANTED)}")
    except AssertionError as e:
        raise AssertionError(f"{e}; found {sorted(found)}") from None
    for key in WANTED:
        assert found[key]["key"], found[key]
        assert found[key]["value"]
    assert found[("pinned_at_max", "burner")]["key"] == "bots.burner.scale.max"
    assert found[("memory_growth", "leaky")]["figures"]["mb_per_h"] > 1000  # 2 MB/s is 7200
    assert found[("ipc_drops", "flood")]["figures"]["dropped"] > 0

    saved = sup.cli("analyze", "leaky", "--save", "leaking", "--since", "10m")
    assert saved.returncode == 0, saved.stderr
    conn = store.open_for_reading(store.path_in(sup.run_dir))
    first, _ = store.span(conn) or (0.0, 0.0)
    conn.close()

    # The fix: the leak's rate goes to 0. The supervisor restarts with the changed config.
    assert sup.cli("shutdown").returncode == 0
    sup.wait_exit()
    restarted_at = time.time()
    sup.configure(fleet(0.0, mark))
    sup.start()
    sup.wait_running("leaky", 1, timeout_s=30)

    conn = store.open_for_reading(store.path_in(sup.run_dir))
    assert (store.span(conn) or (0.0, 0.0))[0] == first  # the old samples are still there
    conn.close()

    seen: list[Any] = []

    def improved() -> dict[str, Any] | None:
        _, data = analyze(sup, "leaky", "--compare", "leaking", "--since", "30s")
        rows = {(c["bot"], c["figure"]): c for c in data["changes"]}
        rss = rows.get(("leaky", "rss_mb"))
        seen[:] = [rss]
        now = rss and rss["now"]
        ok = now and now["n"] >= 20 and rss["beyond_noise"] and rss["change"] < 0
        return rss if ok else None

    try:
        rss = wait_until(improved, 120, "the comparison to show the leak fixed")
    except AssertionError as e:
        conn = store.open_for_reading(store.path_in(sup.run_dir))
        latest = store.samples(conn, time.time() - 60, bot="leaky")
        monitor = sup.status()["plugins"]["monitor"]
        problems = [line for line in sup.log().splitlines() if "history" in line][-5:]
        raise AssertionError(
            f"{e}; last rss_mb row: {seen}; now {time.time()}, last minute: "
            f"{ {k: v[-2:] for k, v in latest.items() if k[2] == 'rss_mb'} }; "
            f"monitor: {monitor}; log: {problems}"
        ) from None
    assert rss["now"]["mean"] < rss["before"]["mean"]
    _, data = analyze(sup, "leaky", "--since", f"{int(time.time() - restarted_at)}s")
    assert ("memory_growth", "leaky") not in {(f["rule"], f["bot"]) for f in data["findings"]}
