"""A module bot for `preload = true`: it notes each import of itself in $PRELOAD_DIR/imports,
then each worker says READY through the SDK and notes its pid in $PRELOAD_DIR/workers.

$PRELOAD_THREAD=1 starts a thread at import (a zygote must refuse to fork that).
"""

from __future__ import annotations

import os
import threading
import time

from supervisor.worker import Worker

VERSION = "1"  # a test rewrites this to check that a changed module replaces the zygote

with open(os.path.join(os.environ["PRELOAD_DIR"], "imports"), "a") as _f:
    _f.write(f"{os.getpid()} {VERSION}\n")
IMPORTED_BY = os.getpid()

if os.environ.get("PRELOAD_THREAD") == "1":
    threading.Thread(target=time.sleep, args=(3600,), name="import-time", daemon=True).start()


def main() -> None:
    with open(os.path.join(os.environ["PRELOAD_DIR"], "workers"), "a") as f:
        f.write(f"{os.getpid()} {IMPORTED_BY} {VERSION} {os.environ['SUPERVISOR_WORKER']}\n")
    with Worker.connect_sync() as w:
        w.ready()
        while not w.draining:
            time.sleep(0.05)
            w.beat()
