"""`[bots.NAME.resources]` -> frozen resource limits, and their units.

    [bots.web.resources]
    cpu = 1.5                 # cores (also "500m" or "150%"): cpu.max / cfs quota
    cpu_weight = 100          # 1..10000, relative share under contention (cpu.weight / shares)
    memory_max = "512MiB"     # hard: the kernel OOM-kills inside the group
    memory_high = "400MiB"    # throttle and reclaim before the hard limit
    pids_max = 64             # processes and threads in the group
    per = "bot"               # one group for the bot's workers, or "worker": one each

and on the bot, `resources_required = false` to run (with a warning) where the host cannot
give cgroups. A resources table without limits still gives the workers cgroups: accounting,
and teardown of everything they started. Parsing only; what the host can give is
config/cgroup_host.py's question.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from supervisor.config.fields import BadValue, Table, enum_choice, integer
from supervisor.config.logs import byte_size

MAX_WORKER_GROUPS = 256  # per = "worker": groups per bot beyond this are an operator's mistake
MIN_MEMORY_BYTES = 1 << 20  # below 1 MiB not even an interpreter starts
MAX_CPU_WEIGHT = 10_000
_CPU_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(m|%)?\s*$")


class Per(enum.StrEnum):
    BOT = "bot"  # one group holds all the bot's workers
    WORKER = "worker"  # a group per worker slot, under the bot's


@dataclass(frozen=True, slots=True)
class Resources:
    """A bot's limits; None means "not limited"."""

    cpu: float | None = None  # cores
    cpu_weight: int | None = None
    memory_max: int | None = None  # bytes
    memory_high: int | None = None  # bytes
    pids_max: int | None = None
    per: Per = Per.BOT
    required: bool = True  # the host must give every limit, else check and run refuse
    enabled: bool = False  # the bot has a resources table: its workers get cgroups

    @property
    def empty(self) -> bool:
        return not self.limits()

    def limits(self) -> dict[str, float | int]:
        """The limits set, by key name, in config order."""
        found = {
            "cpu": self.cpu,
            "cpu_weight": self.cpu_weight,
            "memory_max": self.memory_max,
            "memory_high": self.memory_high,
            "pids_max": self.pids_max,
        }
        return {k: v for k, v in found.items() if v is not None}


def cpu_cores(value: Any) -> float:
    """Cores as a number > 0, or a string: "500m" (millicores, as Kubernetes) or "150%"."""
    cores: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        cores = float(value)
    elif isinstance(value, str) and (m := _CPU_TEXT.match(value)):
        cores = float(m[1]) / {"m": 1000.0, "%": 100.0}.get(m[2] or "", 1.0)
    if cores is None or cores <= 0:
        raise BadValue(
            f'expected a number of cores > 0 (such as 0.5, "500m" or "50%"), got {_show(value)}'
        )
    return cores


def memory_bytes(value: Any) -> int:
    """A size ("512MiB", bytes as an integer) of at least 1 MiB."""
    size = byte_size(value)
    if size < MIN_MEMORY_BYTES:
        raise BadValue(f"expected at least 1MiB, got {_show(value)}")
    return size


def weight(value: Any) -> int:
    found = integer(minimum=1)(value)
    if found > MAX_CPU_WEIGHT:
        raise BadValue(f"expected an integer from 1 to {MAX_CPU_WEIGHT}, got {found}")
    return found


def take_resources(bot: Table, most_workers: int) -> Resources:
    """The bot's `resources` table and its `resources_required` key (absent: no limits).

    most_workers: the most workers the bot may have (workers, or scale.max), for per = "worker".
    """
    required = bot.take("resources_required", _boolean, True)
    if not bot.has("resources"):
        return Resources(required=required)
    table = bot.sub("resources")
    found = Resources(
        cpu=table.take("cpu", cpu_cores, None),
        cpu_weight=table.take("cpu_weight", weight, None),
        memory_max=table.take("memory_max", memory_bytes, None),
        memory_high=table.take("memory_high", memory_bytes, None),
        pids_max=table.take("pids_max", integer(minimum=1), None),
        per=table.take("per", enum_choice(Per), Per.BOT),
        required=required,
        enabled=True,
    )
    table.finish()
    high, hard = found.memory_high, found.memory_max
    if high is not None and hard is not None and hard < high:
        table.problems.append(
            f"{table.key_path('memory_max')}: {hard} bytes is below memory_high ({high} bytes)"
        )
    if found.per is Per.WORKER and most_workers > MAX_WORKER_GROUPS:
        table.problems.append(
            f'{table.key_path("per")}: "worker" with up to {most_workers} workers: at most '
            f'{MAX_WORKER_GROUPS} groups per bot; use per = "bot"'
        )
    return found


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected true or false, got {_show(value)}")
    return value


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)
