"""ticker: prints the time once a second; stops at once on SIGTERM (default action)."""

from __future__ import annotations

import os
import time


def main() -> int:
    slot = os.environ.get("SUPERVISOR_WORKER", "-")
    while True:
        print(f"ticker {slot}: {time.strftime('%H:%M:%S')}")
        time.sleep(1.0)
