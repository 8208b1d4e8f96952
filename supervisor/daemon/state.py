"""State that must survive a supervisor restart, kept in `run_dir/state.json`.

It holds the manual scale pins, the bots and workers stopped by hand
(`supervisor stop`, kept until `start`), and the process groups of the running
workers (so that a supervisor restarted after a `kill -9` can end the
previous run's leftovers). The file is always replaced atomically: temp
file, fsync, rename, fsync of the directory. A file that does not parse is
kept aside as `state.json.corrupt` and the run starts from empty state.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from supervisor.daemon.helpers.guardian import Group

log = structlog.get_logger("supervisor.state")

VERSION = 1


@dataclass
class State:
    pins: dict[str, int] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # bots stopped by hand
    held: dict[str, list[int]] = field(default_factory=dict)  # bot -> workers stopped by hand

    def to_json(self) -> bytes:
        data = {
            "version": VERSION,
            "pins": self.pins,
            "groups": [g._asdict() for g in self.groups],
            "stopped": sorted(self.stopped),
            "held": {b: sorted(w) for b, w in self.held.items()},
        }
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> State:
        """Strict: a file of another program or version, or one edited by hand into nonsense,
        is refused whole (ValueError) rather than half-trusted. A pin outside 0..MAX_PIN
        would start that many workers; a group with a made-up pgid is only ever signalled if
        its leader's start time matches (guardian.still_ours), but a pgid below 2 or a string
        would reach os.killpg."""
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("unknown state file version")
        pins, groups = data.get("pins", {}), data.get("groups", [])
        if not isinstance(pins, dict) or not all(_count(v) for v in pins.values()):
            raise ValueError(f"pins must map bot names to counts 0..{MAX_PIN}")
        if not isinstance(groups, list) or not all(_group(g) for g in groups):
            raise ValueError("groups must be a list of {pgid, start_ticks, signal, timeout_s}")
        stopped, held = data.get("stopped", []), data.get("held", {})  # absent in older files
        if not isinstance(stopped, list) or not all(isinstance(b, str) for b in stopped):
            raise ValueError("stopped must be a list of bot names")
        if not isinstance(held, dict) or not all(
            isinstance(w, list) and all(_whole(i, 0, MAX_PIN) for i in w) for w in held.values()
        ):
            raise ValueError(f"held must map bot names to lists of slots 0..{MAX_PIN}")
        return cls(
            pins={str(k): v for k, v in pins.items()},
            groups=[Group(**g) for g in groups],
            stopped=list(stopped),
            held={str(b): list(w) for b, w in held.items()},
        )


MAX_PIN = 10_000  # as `supervisor scale` allows


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _count(value: object) -> bool:
    return _whole(value, 0, MAX_PIN)


def _group(g: object) -> bool:
    if not isinstance(g, dict) or set(g) != set(Group._fields):
        return False
    timeout = g["timeout_s"]
    return (
        _whole(g["pgid"], 2, 1 << 22)
        and _whole(g["start_ticks"], 0, 1 << 62)
        and _whole(g["signal"], 1, 64)
        and isinstance(timeout, int | float)
        and not isinstance(timeout, bool)
        and 0 <= timeout <= 3600
    )


def load(path: Path) -> State:
    """The saved state, or empty state with a warning if there is none we can trust."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return State()
    except OSError as e:  # a directory, no permission, an I/O error: start anyway
        log.warning("state_unreadable", path=str(path), error=str(e))
        return State()
    try:
        return State.from_json(raw)
    except (ValueError, TypeError, AttributeError, RecursionError) as e:
        aside = path.with_name(path.name + ".corrupt")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        log.warning("state_corrupt", path=str(path), kept_as=str(aside), error=str(e))
        return State()


def save(path: Path, state: State) -> None:
    write_atomic(path, state.to_json())


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
