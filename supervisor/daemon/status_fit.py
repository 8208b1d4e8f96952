"""Keep a status reply under its byte budget, however many workers the fleet has.

A reply that fits is left alone. One that does not loses, in this order, each worker's
`metrics` map (worker-reported, the part without a bound of ours) and then the tail of each
bot's `workers` list (every bot keeps the same share of its list). What was cut is said in the
reply: a top-level `"trimmed"` note for people, and per trimmed bot `workers_total` and
`workers_shown`, so a script can tell and ask `status BOT` for one bot at a time. The counts
(`desired`, `running`, `ready`, `restarts`) are never trimmed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.wire.protocol import MAX_REPLY_FRAME_BYTES

BUDGET_BYTES = MAX_REPLY_FRAME_BYTES // 16  # 4 MiB: ~10,000 workers with a few metrics each


def fit(
    status: dict[str, Any], encode: Callable[[Any], bytes], budget: int = BUDGET_BYTES
) -> dict[str, Any]:
    """status itself if encode(status) fits in budget, else a trimmed copy that does."""
    size = len(encode(status))
    if size <= budget:
        return status
    bots: dict[str, Any] = status.get("bots", {})
    trimmed = dict(status, bots={name: dict(bot) for name, bot in bots.items()})
    for bot in trimmed["bots"].values():
        bot["workers"] = [{k: v for k, v in w.items() if k != "metrics"} for w in bot["workers"]]
    notes = ["per-worker metrics left out"]
    size = len(encode(trimmed))
    total = sum(len(b["workers"]) for b in trimmed["bots"].values())
    share = 1.0
    while size > budget and total:
        share *= max(0.05, min(0.9, 0.9 * budget / size))  # shrink towards the budget
        for name, bot in trimmed["bots"].items():
            full = bots[name]["workers"]
            shown = int(len(full) * share)
            bot["workers"] = bot["workers"][:shown]
            bot["workers_total"], bot["workers_shown"] = len(full), shown
        size = len(encode(trimmed))
        if share < 1e-6:
            break
    if share < 1.0:
        notes.append(
            "workers lists cut short (see workers_shown / workers_total; status BOT shows one bot)"
        )
    trimmed["trimmed"] = f"reply over {budget} bytes: " + "; ".join(notes)
    return trimmed
