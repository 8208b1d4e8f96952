"""State that must survive a supervisor restart, kept in `run_dir/state.json`.

It holds the manual scale pins and the process groups of the running
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

    def to_json(self) -> bytes:
        data = {
            "version": VERSION,
            "pins": self.pins,
            "groups": [g._asdict() for g in self.groups],
        }
        return json.dumps(data, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> State:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("unknown state file version")
        pins = {str(k): int(v) for k, v in data.get("pins", {}).items()}
        groups = [Group(**g) for g in data.get("groups", [])]
        return cls(pins=pins, groups=groups)


def load(path: Path) -> State:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return State()
    try:
        return State.from_json(raw)
    except (ValueError, TypeError, AttributeError) as e:
        aside = path.with_name(path.name + ".corrupt")
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
