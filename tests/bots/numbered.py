"""A test bot that numbers its output lines: COUNT of them (forever if 0), every
EVERY_S seconds (0: as fast as it can), every STDERR_EVERY-th on stderr; then "done"."""

from __future__ import annotations

import os
import sys
import time


def main() -> int:
    count = int(os.environ.get("COUNT", "0"))
    every_s = float(os.environ.get("EVERY_S", "0"))
    stderr_every = int(os.environ.get("STDERR_EVERY", "0"))
    pad = "x" * int(os.environ.get("PAD", "20"))
    i = 0
    while count == 0 or i < count:
        err = stderr_every and i % stderr_every == 0
        print(f"line {i} {pad}", file=sys.stderr if err else sys.stdout)
        i += 1
        if every_s:
            time.sleep(every_s)
    print("done", flush=True)
    while True:
        time.sleep(3600)
