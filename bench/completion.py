"""Completion benchmark: how long one Tab costs, i.e. one `supervisor __complete` process.

    python bench/completion.py [--runs 20]

Times the venv's `supervisor` console script answering `restart <Tab>` (bot names, a status
request to a running supervisor of 3 bots) and `restart alpha --worker <Tab>` (slots), and,
for scale, `supervisor --version` (the bare start-up) and `python -c "import zmq"` (what the
completion path does not pay). Medians of the runs, wall clock of the whole process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Supervisor

SUPERVISOR = Path(sys.executable).parent / "supervisor"
FLEET = "".join(
    f'[bots.{name}]\ncommand = ["sleep", "600"]\nworkers = 3\n'
    for name in ("alpha", "beta", "gamma")
)


def median_ms(argv: list[str], runs: int) -> float:
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
        took.append(time.perf_counter() - began)
    return statistics.median(took) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    sup = Supervisor()
    try:
        sup.configure(FLEET)
        sup.start()
        sup.wait_running("alpha", 3)
        config = ["-c", str(sup.config_path)]
        slots = ["restart", "alpha", "--worker", ""]
        cases = {
            "supervisor --version": [str(SUPERVISOR), "--version"],
            "__complete restart ''": [str(SUPERVISOR), "__complete", *config, "restart", ""],
            "__complete restart alpha --worker ''": [
                str(SUPERVISOR),
                "__complete",
                *config,
                *slots,
            ],
            "python -c 'import zmq'": [sys.executable, "-c", "import zmq"],
        }
        for name, argv in cases.items():
            print(f"{name:<40} {median_ms(argv, runs):7.1f} ms  (median of {runs})")
    finally:
        sup.cleanup()


if __name__ == "__main__":
    main()
