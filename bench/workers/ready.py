"""A Python bot with a realistic import cost that says READY once its imports are done.

    python bench/workers/ready.py              (exec, under any supervisor)
    module = "bench.workers.ready:main"        (ours: fork server, or preload = true)

At import it loads what a small service bot typically does (asyncio, logging, json,
http/email/urllib, decimal, sqlite3, ssl, uuid, zoneinfo) and the SDK (pyzmq, msgpack):
about 60-90 ms of CPU here when started afresh. main() then says READY through the SDK
(when a supervisor of ours started it; a no-op elsewhere), flushes it, and only then notes
its pid in $BENCH_MARKER, so "alive" in the benchmark means "ready after its imports".
"""

from __future__ import annotations

import asyncio  # noqa: F401
import dataclasses  # noqa: F401
import decimal  # noqa: F401
import email.message  # noqa: F401
import http.client  # noqa: F401
import json  # noqa: F401
import logging  # noqa: F401
import os
import sqlite3  # noqa: F401
import ssl  # noqa: F401
import sys
import time
import urllib.request  # noqa: F401
import uuid  # noqa: F401
import zoneinfo  # noqa: F401
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from supervisor.worker import Worker


def main() -> None:
    w = Worker.connect_sync()
    w.ready()
    w.flush()
    marker = os.environ.get("BENCH_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
