"""Scheduled one-shots in a real supervisor: `every` ticks on its grid, and overlap = skip."""

from __future__ import annotations

import itertools

from tests.integration.harness import REPO, Supervisor, wait_until


def _job(every: str, sleep_s: float, overlap: str = "skip") -> str:
    return f"""
[bots.tick]
module = "tests.bots.job:main"
cwd = "{REPO}"
every = "{every}"
overlap = "{overlap}"
env = {{ JOB_SLEEP_S = "{sleep_s}" }}
"""


def test_every_2s_runs_five_times_in_10s(sup: Supervisor) -> None:
    """Ticks fall on a 2 s grid from the start: the ten seconds from the first tick hold five,
    each started one run (a quick job never overlaps), and status shows the last and next
    run. Before its first tick the bot is `scheduled` and nothing of it has run."""
    sup.configure(_job("2s", 0))
    sup.start()
    first = sup.bot("tick")
    if first["job"]["ticks"] == 0:
        assert first["state"] == "scheduled"
        assert first["job"]["runs"] == 0
    assert first["job"]["schedule"] == "every 2s"
    wait_until(lambda: sup.bot("tick")["job"]["ticks"] >= 6, timeout_s=60, what="six ticks")
    wait_until(lambda: sup.bot("tick")["state"] == "succeeded", what="the last run to end")
    ticks = [e for e in sup.events({"job_ticked"}) if e["bot"] == "tick"]
    ats = [t["at"] for t in ticks]
    # `at` is the tick's own time (rounded to 1 ms in the event), not when the loop woke
    assert all(abs(b - a - 2.0) < 0.002 for a, b in itertools.pairwise(ats))
    assert len([a for a in ats if a < ats[0] + 9.9]) == 5  # the sixth is at +10 s
    assert all(t["action"] == "start" for t in ticks)
    job = sup.bot("tick")["job"]
    assert job["runs"] == job["ticks"] == len(ticks)
    assert (job["skipped"], job["exit_code"]) == (0, 0)
    assert job["next_run"] > job["last_tick"]


def test_overlap_skip_skips_while_a_slow_run_holds(sup: Supervisor) -> None:
    """A 5 s job every 2 s with overlap = skip: every tick while the run's worker is alive is
    skipped (not queued, no second worker), and the first tick after it exited starts one."""
    sup.configure(_job("2s", 5))
    sup.start()
    wait_until(lambda: sup.bot("tick")["job"]["runs"] >= 2, timeout_s=60, what="a second run")
    events = sup.events({"job_ticked", "worker_spawned", "worker_exited"})
    first_exit = next(i for i, e in enumerate(events) if e["event"] == "worker_exited")
    ticks_before = [e["action"] for e in events[:first_exit] if e["event"] == "job_ticked"]
    assert ticks_before[0] == "start"
    assert ticks_before[1:]
    assert set(ticks_before[1:]) == {"skip"}
    after = next(e for e in events[first_exit:] if e["event"] == "job_ticked")
    assert after["action"] == "start"
    spawned = [e for e in events[:first_exit] if e["event"] == "worker_spawned"]
    assert len(spawned) == 1  # never two runs at once
    assert sup.bot("tick")["job"]["skipped"] >= 1
