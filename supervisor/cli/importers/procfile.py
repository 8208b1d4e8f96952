"""A Procfile (`name: command` per line, as foreman and Heroku read it) -> bots.

A command with shell syntax (`$VAR`, pipes, `&&`, redirections) runs under `sh -c`, as
foreman runs every line; a plain one is split into argv and runs without a shell.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from supervisor.cli.importers.common import (
    Bot,
    SourceError,
    Unconverted,
    read_source,
    render,
    sanitize_names,
)

FORMAT = "procfile"
LINE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*:\s*(\S.*)$")
_SHELL = re.compile(r"[$`|&;<>(){}*?~]|\\$")


def convert(path: Path, env: Mapping[str, str]) -> tuple[str, list[Unconverted]]:
    """(supervisor.toml text, what did not carry over: nothing) of a Procfile."""
    bots = []
    for number, line in enumerate(read_source(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE.match(line.strip())
        if match is None:
            raise SourceError(f"{path}:{number}: expected NAME: COMMAND, got {line.strip()}")
        bot = Bot(match[1], f"{path.name}:{number}", path.name, match[1])
        bot.keys["command"] = command(match[2], f"{path}:{number}")
        bots.append(bot)
    if not bots:
        raise SourceError(f"{path}:1: expected NAME: COMMAND lines, found none")
    sanitize_names(bots)
    return render(str(path), FORMAT, bots, []), []


def command(text: str, where: str) -> list[str]:
    """argv of one line: split, or `sh -c` when it uses the shell."""
    if _SHELL.search(text):
        return ["sh", "-c", text]
    try:
        return shlex.split(text)
    except ValueError as e:
        raise SourceError(f"{where}: {e}") from None
