"""Start-up pacing: max_starting caps the workers spawned and not yet ready, fleet-wide and
per bot, sampled through status while a fleet of 200 comes up."""

from __future__ import annotations

import time

from tests.integration.harness import Supervisor, wait_until

FLEET = """
[bots.many]
command = ["sleep", "1000"]
workers = 200
readiness = "delay"
ready_after_s = "300ms"  # each is starting for this long
stop_timeout_s = "2s"

[bots.few]
command = ["sleep", "1000"]
workers = 10
readiness = "delay"
ready_after_s = "300ms"
max_starting = 3
stop_timeout_s = "2s"
"""


def _sample(sup: Supervisor) -> tuple[int, int, int, int]:
    """(fleet starting as status counts it, of which `few`, workers running, pacing header)."""
    status = sup.status()
    starting = {
        name: sum(1 for w in bot["workers"] if w["pid"] and w["state"] == "starting")
        for name, bot in status["bots"].items()
    }
    running = sum(bot["running"] for bot in status["bots"].values())
    return (
        sum(starting.values()),
        starting["few"],
        running,
        status["supervisor"]["pacing"]["starting"],
    )


def test_200_workers_with_max_starting_20_start_in_waves(sup: Supervisor) -> None:
    """Never more than 20 workers starting at once (and never more than 3 of the bot capped at
    3), sampled all the way until all 210 are ready; and the cap was reached, so it paced."""
    sup.configure(FLEET)
    text = sup.config_path.read_text().replace(
        "[supervisor]\n", "[supervisor]\nmax_starting = 20\n"
    )
    sup.config_path.write_text(text)
    sup.start()
    samples = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sample = _sample(sup)
        samples.append(sample)
        bots = sup.status()["bots"]
        if all(b["state"] == "running" for b in bots.values()):
            break
    assert all(b["state"] == "running" for b in sup.status()["bots"].values()), samples[-1]
    assert max(s[0] for s in samples) <= 20, [s for s in samples if s[0] > 20]
    assert max(s[3] for s in samples) <= 20
    assert max(s[1] for s in samples) <= 3
    assert max(s[3] for s in samples) == 20  # the first wave filled the cap
    assert sup.status()["supervisor"]["pacing"] == {"max_starting": 20, "starting": 0, "queued": {}}
    wait_until(lambda: sup.bot("many")["running"] == 200)
