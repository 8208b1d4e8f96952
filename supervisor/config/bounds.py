"""How many workers a config may ask for: a typo such as 20000 for 200 is an error, not a fork bomb.

The ceiling is the smallest of `[supervisor] max_workers` (default 10,000, the same bound
`supervisor scale` has), the kernel's `pid_max` and the supervisor's soft `RLIMIT_NPROC`
(each is a hard stop for fork anyway: past it, spawns fail with EAGAIN one by one). It is
checked per bot (`workers`, and `scale.max` for an autoscaled bot) and for the whole fleet
(the sum of each bot's largest count), each problem one line with its key path.
"""

from __future__ import annotations

import resource
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_MAX_WORKERS = 10_000
_PID_MAX = "/proc/sys/kernel/pid_max"


@dataclass(frozen=True, slots=True)
class Ceiling:
    """The largest worker count allowed, and which limit set it (for the message)."""

    count: int
    reason: str


def host_ceiling(max_workers: int) -> Ceiling:
    """The smallest of max_workers, pid_max and RLIMIT_NPROC (soft), with its name."""
    found = [Ceiling(max_workers, "supervisor.max_workers")]
    try:
        with open(_PID_MAX) as f:
            found.append(Ceiling(int(f.read().strip()), f"the host's pid_max ({_PID_MAX})"))
    except (OSError, ValueError):
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft != resource.RLIM_INFINITY:
        found.append(Ceiling(int(soft), "the supervisor's RLIMIT_NPROC (ulimit -u)"))
    return min(found, key=lambda c: c.count)


def check_counts(
    counts: Iterable[tuple[str, str, int]], ceiling: Ceiling, problems: list[str]
) -> None:
    """counts: (bot, key, largest count) per bot; appends a line per bot over the ceiling and
    one for a fleet whose sum is over it."""
    total, over = 0, False
    for bot, key, count in counts:
        total += count
        if count > ceiling.count:
            over = True
            problems.append(
                f"bots.{bot}.{key}: {count} workers is more than {ceiling.count}, "
                f"the limit set by {ceiling.reason}"
            )
    if total > ceiling.count and not over:  # one bot over already says it
        problems.append(
            f"supervisor.max_workers: the bots ask for up to {total} workers together, "
            f"more than {ceiling.count}, the limit set by {ceiling.reason}"
        )
