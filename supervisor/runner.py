"""Runs a bot given as `module = "package.module:function"`.

    python -m supervisor.runner package.module:function [ARGS...]

The function is called with no arguments; if it returns a coroutine, that
runs under asyncio. An int result is the exit code.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 2 or ":" not in argv[1]:
        print("usage: python -m supervisor.runner package.module:function", file=sys.stderr)
        return 2
    module_name, _, func_name = argv[1].partition(":")
    sys.argv = [argv[1], *argv[2:]]
    func = getattr(importlib.import_module(module_name), func_name)
    result = func()
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result if isinstance(result, int) else 0


async def _await(awaitable: object) -> object:
    return await awaitable  # type: ignore[misc]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
