"""The autoscaler's wiring, with a stand-in bot: pin or auto, and what it tells."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.daemon.autoscaler import Autoscaler
from supervisor.policy.scaling import Aggregation, MetricSpec, Policy, Source

POLICY = Policy(
    min=1,
    max=5,
    metrics=(MetricSpec(Source.WORKER, "inflight", 10, Aggregation.SUM),),
    scale_down_window_s=0,
)


class FakeEvents:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        self.emitted.append((event, fields))


class FakeBot:
    """What the autoscaler reads of a bot: no workers report anything here."""

    name = "q"

    def __init__(self, pin: int | None) -> None:
        self.pin = pin
        self.auto_desired = 2
        self.slots: dict[int, Any] = {}
        self.pokes = 0

    @property
    def desired(self) -> int:
        return self.pin if self.pin is not None else self.auto_desired

    def poke(self) -> None:
        self.pokes += 1


@pytest.mark.parametrize(
    ("pin", "external", "desired", "auto_desired", "events"),
    [
        (None, {}, 2, 2, 0),  # no values: keep
        (7, {}, 7, 5, 0),  # pinned above max: the policy's advice (clamped) is only kept
    ],
)
def test_pin_decides_and_the_policy_only_advises(
    pin: int | None, external: dict[str, float | None], desired: int, auto_desired: int, events: int
) -> None:
    """While pinned the autoscaler computes but does not act or announce; in auto it does."""
    bot, ev = FakeBot(pin), FakeEvents()
    scaler = Autoscaler(bot, POLICY, ev)  # type: ignore[arg-type]
    scaler.step(100.0, external)
    assert (bot.desired, bot.auto_desired, len(ev.emitted)) == (desired, auto_desired, events)
    status = scaler.status(100.0)
    assert status["pin_outside_range"] is (pin is not None and not 1 <= pin <= 5)
    assert status["last_decision"]["desired"] == auto_desired


def test_auto_acts_and_announces_with_its_inputs() -> None:
    """In auto mode a change of count is applied, the bot poked, and bot_scaled carries the
    metric readings and the reason."""
    redis_policy = Policy(min=1, max=5, metrics=(MetricSpec(Source.REDIS_LIST, "jobs", 20),))
    bot, ev = FakeBot(None), FakeEvents()
    scaler = Autoscaler(bot, redis_policy, ev)  # type: ignore[arg-type]
    scaler.step(100.0, {"jobs": 80.0})
    assert (bot.desired, bot.pokes) == (4, 1)
    event, fields = ev.emitted[0]
    assert event == "bot_scaled"
    assert (fields["previous"], fields["desired"], fields["mode"]) == (2, 4, "auto")
    assert fields["metrics"][0]["metric"] == "redis_list jobs"
    assert fields["metrics"][0]["value"] == 80.0
    assert fields["reason"].endswith("2 -> 4")
