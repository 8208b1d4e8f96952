"""flaky: works for a while, then crashes, to show restarts and backoff in `status`."""

from __future__ import annotations

import os
import random
import time


def main() -> int:
    slot = os.environ.get("SUPERVISOR_WORKER", "-")
    lifetime_s = random.uniform(20.0, 60.0)
    print(f"flaky {slot}: up; will crash in {lifetime_s:.0f}s")
    time.sleep(lifetime_s)
    print(f"flaky {slot}: crashing on purpose")
    return 1
