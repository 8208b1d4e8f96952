"""flaky: works for a while, then crashes, to show restarts and backoff in `status`."""

from __future__ import annotations

import os
import random
import time

from supervisor.worker import Worker


def main() -> int:
    slot = os.environ.get("SUPERVISOR_WORKER", "-")
    lifetime_s = random.uniform(20.0, 60.0)
    with Worker.connect_sync() as w:
        w.ready()
        w.log("info", f"will crash in {lifetime_s:.0f}s")
        print(f"flaky {slot}: up; will crash in {lifetime_s:.0f}s")
        deadline = time.monotonic() + lifetime_s
        while time.monotonic() < deadline and not w.draining:
            time.sleep(0.2)
            w.beat()
    if w.draining:
        return 0
    print(f"flaky {slot}: crashing on purpose")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
