"""A test bot that writes down how it was started, then waits (or exits as told)."""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main() -> int:
    slot = os.environ["SUPERVISOR_WORKER"]
    report = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "cwd": os.getcwd(),
        "argv": sys.argv,
        "path0": sys.path[0],
        "env": {k: v for k, v in os.environ.items() if k.startswith(("SUPERVISOR_", "PROBE_"))},
        "stdin": sys.stdin.read(),
        "rlimits": {
            name: resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}"))
            for name in ("nofile", "as", "core")
        },
        "umask": _umask(),
        "uid": os.getuid(),
    }
    out = os.environ["PROBE_DIR"]
    with open(f"{out}/{os.environ['SUPERVISOR_BOT']}.{slot}.json.tmp", "w") as f:
        json.dump(report, f)
    os.rename(
        f"{out}/{os.environ['SUPERVISOR_BOT']}.{slot}.json.tmp",
        f"{out}/{os.environ['SUPERVISOR_BOT']}.{slot}.json",
    )
    print(f"probe {slot} up")
    print(f"probe {slot} err", file=sys.stderr)
    action = os.environ.get("PROBE_THEN", "wait")
    if action == "exit3":
        sys.exit(3)
    if action == "raise":
        raise RuntimeError("probe failed on purpose")
    while True:
        time.sleep(3600)


async def amain() -> int:
    """The same probe as an async bot."""
    return main()
