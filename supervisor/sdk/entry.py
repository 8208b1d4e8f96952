"""Runs a bot given as `module = "package.module:function"` or `"package.module"`.

    python -m supervisor.sdk.entry package.module:function

A function is called with no arguments; if it returns a coroutine, that runs
under asyncio; an int result is the exit code. A bare module runs as
`__main__`, as `python -m` would. The fork server (forkserver.py) runs
workers through `run_target` too, so both ways of starting behave alike.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import runpy
import sys


def run_target(spec: str) -> int:
    """Run the bot and return its exit code (SystemExit passes through)."""
    if ":" not in spec:
        runpy.run_module(spec, run_name="__main__", alter_sys=True)
        return 0
    module_name, _, func_name = spec.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func()
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result if isinstance(result, int) else 0


async def _await(awaitable: object) -> object:
    return await awaitable  # type: ignore[misc]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m supervisor.sdk.entry package.module[:function]", file=sys.stderr)
        return 2
    sys.argv = [argv[1], *argv[2:]]
    return run_target(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
