"""A test bot that burns a whole core, beating from its busy loop (sync SDK)."""

from __future__ import annotations

from supervisor.worker import Worker


def main() -> None:
    with Worker.connect_sync() as w:
        w.ready()
        while not w.draining:
            for _ in range(20_000):
                pass
            w.beat()
