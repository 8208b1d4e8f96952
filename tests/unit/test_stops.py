"""Stops by hand in the state file: saved with the pins, read back, older files still load."""

from __future__ import annotations

import json

from supervisor.daemon.state import State
from supervisor.daemon.stops import Stops


def test_stops_round_trip_through_the_state_file() -> None:
    """What `stop` recorded comes back from state.json as it was saved."""
    stops = Stops()
    stops.stopped("a", None)
    stops.stopped("b", 2)
    stops.stopped("b", 0)
    raw = State({"c": 4}, [], *stops.saved()).to_json()
    back = State.from_json(raw)
    assert (back.pins, back.stopped, back.held) == ({"c": 4}, ["a"], {"b": [0, 2]})
    restored = Stops.restored(back.stopped, back.held, {"a", "b"})
    assert (restored.bots, restored.workers) == ({"a"}, {"b": {0, 2}})


def test_start_clears_and_a_removed_bot_is_forgotten() -> None:
    """`start BOT` clears the bot and all its workers; `start BOT --worker N` one worker."""
    stops = Stops({"a"}, {"a": {1}, "b": {0, 1}})
    stops.started("b", 0)
    assert stops.saved() == (["a"], {"a": [1], "b": [1]})
    stops.started("a", None)
    assert stops.saved() == ([], {"b": [1]})
    stops.forget("b")
    assert stops.saved() == ([], {})
    assert Stops.restored(["gone"], {"gone": [1]}, {"a"}).saved() == ([], {})


def test_a_state_file_without_stops_loads() -> None:
    """A state.json of an older supervisor (pins and groups only) still loads."""
    old = json.dumps({"version": 1, "pins": {"a": 2}, "groups": []}).encode()
    back = State.from_json(old)
    assert (back.pins, back.stopped, back.held) == ({"a": 2}, [], {})
