"""A test bot that reports metrics as fast as it can (sync SDK). While the supervisor is behind,
the SDK's buffer fills and it sheds the oldest metrics, which the supervisor then counts as
dropped; the bot touches $FLOOD_MARK (if set) once it has seen its SDK shed some."""

from __future__ import annotations

import os
import pathlib

from supervisor.worker import Worker


def main() -> None:
    mark = os.environ.get("FLOOD_MARK", "")
    with Worker.connect_sync() as w:
        w.ready()
        sent = 0
        while not w.draining:
            for _ in range(10_000):
                w.gauge("flood", sent)
                sent += 1
            w.count("flood_batches")
            w.beat()
            if mark and w._outbox.dropped:  # the SDK's own count, before it is reported
                pathlib.Path(mark).touch()
                mark = ""
