"""A test one-shot job: sleeps $JOB_SLEEP_S (0 by default), then exits 0."""

from __future__ import annotations

import os
import time


def main() -> int:
    time.sleep(float(os.environ.get("JOB_SLEEP_S", "0")))
    return 0
