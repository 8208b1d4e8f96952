"""Run a command while every core is busy: `python tests/load.py CMD...` (`make test-stress`).

One busy-looping process per core (multiprocessing, no new service) for as long as the command
runs; the hogs are ended whatever happens, and the command's exit code is ours. The suite must
pass like this: a test that only passes on a quiet machine is waiting on a guessed time.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys


def _spin() -> None:
    while True:
        pass


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python tests/load.py CMD [ARG...]", file=sys.stderr)
        return 2
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for hog in hogs:
        hog.start()
    print(f"load: {len(hogs)} busy processes, one per core", flush=True)
    try:
        return subprocess.call(argv)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.join()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
