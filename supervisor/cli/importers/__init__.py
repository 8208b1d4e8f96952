"""`supervisor import`: another supervisor's config -> our supervisor.toml text.

One module per format (supervisord, circus, pm2, procfile), each a pure function of the
source file(s) and an environment (for `%(ENV_X)s` and `$(circus.env.X)`):

    convert(path, env) -> (toml_text, [Unconverted(file, section, key, why), ...])

Nothing is dropped silently: what has no equivalent is in the list and, as a comment,
in the text. `common.py` builds the text with a small TOML writer of our own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from supervisor.cli.importers.common import SourceError, Unconverted, read_source

FORMATS = ("supervisord", "circus", "pm2", "procfile")
Converter = Callable[[Path, Mapping[str, str]], tuple[str, list[Unconverted]]]

__all__ = ["FORMATS", "SourceError", "Unconverted", "convert", "detect"]


def convert(
    path: Path, fmt: str | None, env: Mapping[str, str]
) -> tuple[str, str, list[Unconverted]]:
    """(format, toml_text, unconverted) of `path`, its format detected when None."""
    fmt = fmt or detect(path)
    return fmt, *_converter(fmt)(path, env)


def _converter(fmt: str) -> Converter:
    if fmt == "supervisord":
        from supervisor.cli.importers import supervisord as module
    elif fmt == "circus":
        from supervisor.cli.importers import circus as module  # type: ignore[no-redef]
    elif fmt == "pm2":
        from supervisor.cli.importers import pm2 as module  # type: ignore[no-redef]
    elif fmt == "procfile":
        from supervisor.cli.importers import procfile as module  # type: ignore[no-redef]
    else:
        raise SourceError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return module.convert


def detect(path: Path) -> str:
    """The format of `path` from its name and contents; SourceError naming what it saw."""
    if path.name == "Procfile" or path.name.startswith("Procfile."):
        return "procfile"
    text = read_source(path)
    if re.search(r"^\s*\[program:", text, re.MULTILINE):
        return "supervisord"
    if re.search(r"^\s*\[watcher:", text, re.MULTILINE):
        return "circus"
    if path.suffix in (".json", ".js", ".cjs", ".mjs") and re.search(r"\bapps\b", text):
        return "pm2"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    from supervisor.cli.importers.procfile import LINE

    if lines and all(LINE.match(ln.strip()) for ln in lines):
        return "procfile"
    raise SourceError(
        f"{path}: unknown format: expected [program:x] (supervisord), [watcher:x] (circus), "
        '"apps" in JSON or .config.js (pm2) or NAME: COMMAND lines (procfile); '
        "or name it with --from"
    )
