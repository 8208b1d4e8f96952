"""A sleeping Python worker for benchmarks; notes its pid in $BENCH_MARKER once it runs."""

import os
import time

marker = os.environ.get("BENCH_MARKER")
if marker:
    with open(marker, "a") as f:
        f.write(f"{os.getpid()}\n")
while True:
    time.sleep(3600)
