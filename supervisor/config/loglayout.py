"""Where worker log files live under run_dir, and how their segments are named.

    run_dir/logs/BOT/SLOT.00000007.log       a segment: lines of one worker slot
    run_dir/logs/BOT/SLOT.00000006.log.gz    an older one, compressed (log_compress)
    run_dir/logs/BOT/SLOT.log                symlink to the live segment (for `tail -F`)

The daemon's writer (`daemon/logfiles.py`) and the CLI's reader (`cli/logread.py`) both
follow this layout; the rules of rotation are in the reader's docstring. Stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEGMENT = re.compile(r"^(\d+)\.(\d{8})\.log(\.gz)?$")


def segment_name(slot: int, seq: int) -> str:
    return f"{slot}.{seq:08d}.log"


def live_link(slot: int) -> str:
    return f"{slot}.log"


@dataclass(frozen=True)
class Segment:
    slot: int
    seq: int
    name: str  # the file name as found (".log" or ".log.gz")

    @property
    def compressed(self) -> bool:
        return self.name.endswith(".gz")


def list_segments(names: list[str]) -> dict[int, list[Segment]]:
    """Slot -> its segments in order, from a directory listing (a segment found in both
    forms, mid-compression, is listed once, uncompressed)."""
    found: dict[tuple[int, int], Segment] = {}
    for name in names:
        m = _SEGMENT.match(name)
        if m:
            seg = Segment(int(m[1]), int(m[2]), name)
            key = (seg.slot, seg.seq)
            if key not in found or found[key].compressed:
                found[key] = seg
    slots: dict[int, list[Segment]] = {}
    for seg in sorted(found.values(), key=lambda s: (s.slot, s.seq)):
        slots.setdefault(seg.slot, []).append(seg)
    return slots
