"""Finding `run_dir` (where sockets and state live) from the config file.

Kept tiny, tomllib only: every CLI call reads it before talking to the
supervisor, and a mistake elsewhere in the file must not stop `status` or
`shutdown` of a running supervisor.
"""

from __future__ import annotations

import os
import re

from supervisor.errors import ConfigError

# Imported for annotations only: this module is on the CLI's start-up path, where
# typing and pathlib would cost several milliseconds of every call.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT = ".supervisor"
# sun_path holds 108 bytes with its NUL; the longest socket name is "workers".
_MAX_SOCKET_PATH = 107
_LONGEST_SOCKET_NAME = "/workers"


def control_path(run_dir: str | os.PathLike[str]) -> str:
    """The control socket's path: the CLI connects to it, the supervisor binds it."""
    return os.path.join(run_dir, "control")


def user_workers_path(run_dir: str | os.PathLike[str], uid: int, gid: int) -> str:
    """The workers socket of bots that run as uid:gid (daemon/endpoints.py binds it)."""
    return os.path.join(run_dir, "workers.d", f"{uid}-{gid}", "workers")


def socket_path_problem(path: str) -> str:
    """Empty if a unix socket can live at path, else why not (sun_path is short)."""
    size = len(os.fsencode(path))
    if size <= _MAX_SOCKET_PATH:
        return ""
    return f"{path} is too long for a unix socket ({size} bytes, at most {_MAX_SOCKET_PATH})"


def load_run_dir(path: str) -> str:
    """Only `supervisor.run_dir` of the config file, checked."""
    value = _scan_run_dir(path)
    if value is None:
        raw = read_toml(path)
        table = raw.get("supervisor", {})
        value = table.get("run_dir", DEFAULT) if isinstance(table, dict) else DEFAULT
    run_dir, problem = resolve(value, os.path.dirname(os.path.abspath(path)))  # as config.py
    if problem:
        raise ConfigError([f"supervisor.run_dir: {problem}"])
    return run_dir


def resolve(value: object, base: str) -> tuple[str, str]:
    """(absolute run_dir, "") or (default, what is wrong with value)."""
    if not isinstance(value, str) or not value:
        return os.path.join(base, DEFAULT), f"expected a non-empty string, got {value!r}"
    run_dir = os.path.realpath(os.path.join(base, os.path.expanduser(value)))
    longest = len(os.fsencode(run_dir)) + len(_LONGEST_SOCKET_NAME)
    if longest > _MAX_SOCKET_PATH:
        return run_dir, (
            f"too long for unix sockets ({longest} bytes with the socket name, "
            f"at most {_MAX_SOCKET_PATH}); choose a shorter directory"
        )
    return run_dir, ""


_RUN_DIR_LINE = re.compile(r'[ \t]*run_dir[ \t]*=[ \t]*"([^"\\\x00-\x1f]*)"[ \t]*(?:#.*)?')
_SUPERVISOR_TABLE = re.compile(r"[ \t]*\[[ \t]*supervisor[ \t]*\][ \t]*(?:#.*)?")


def _scan_run_dir(path: str) -> str | None:
    """run_dir without a TOML parser (tomllib is most of a `status` call's own work), when
    the file says it the one plain way: a single `run_dir = "..."` line (no escapes) in
    `[supervisor]`, and no multi-line string anywhere that could hide such a line. None
    otherwise (or if the file cannot be read): then tomllib decides, and names any error.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    if text.count("run_dir") != 1 or '"""' in text or "'''" in text:
        return None
    in_supervisor = False
    for line in text.splitlines():
        if line.lstrip().startswith("["):
            in_supervisor = _SUPERVISOR_TABLE.fullmatch(line) is not None
        elif "run_dir" in line:
            m = _RUN_DIR_LINE.fullmatch(line)
            return m[1] if m and in_supervisor else None
    return None


def read_toml(path: str) -> dict[str, Any]:
    """Parse TOML; a syntax error names file, line and column."""
    import tomllib  # noqa: PLC0415  (the CLI's start-up path often needs no parser: see above)

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([f"{path}: cannot read config: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: cannot read config: not UTF-8 ({e.reason})"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_toml_error(path, text, str(e))]) from None


def _toml_error(path: str, text: str, message: str) -> str:
    m = re.match(r"^(.*) \(at line (\d+), column (\d+)\)$", message)
    if m:
        return f"{path}:{m[2]}:{m[3]}: invalid TOML: {m[1]}"
    m = re.match(r"^(.*) \(at end of document\)$", message)
    if m:
        return f"{path}:{text.count(chr(10)) + 1}: invalid TOML: {m[1]} (at end of file)"
    return f"{path}: invalid TOML: {message}"
