"""TOML -> frozen, typed config objects.

The file is parsed once, here; nothing downstream reads raw dicts. Every
problem is reported as one line that starts with its key path, e.g.

    bots.echo.workers: expected an integer >= 0, got "two"

and all problems of a file are reported together, so one `supervisor check`
shows everything to fix. Unknown keys are errors with a did-you-mean hint.
"""

from __future__ import annotations

import enum
import os
import re
import shutil
import signal
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from supervisor.errors import ConfigError
from supervisor.fields import (
    Table,
    argv_list,
    choice,
    directory_path,
    duration,
    enum_choice,
    env_table,
    existing_directory,
    integer,
    module_spec,
    number,
    signal_name,
)

# sun_path holds 108 bytes with its NUL; the longest socket name is "workers".
_MAX_SOCKET_PATH = 107
_LONGEST_SOCKET_NAME = "/workers"
_BOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class RestartMode(enum.StrEnum):
    """When a worker that exited on its own is started again."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


class LogFormat(enum.StrEnum):
    AUTO = "auto"  # console on a terminal, JSON otherwise
    CONSOLE = "console"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before restarting a worker that keeps failing."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.1  # +/- this fraction of the delay, at random
    reset_after_s: float = 10.0  # up this long, and the next failure counts as the first


@dataclass(frozen=True, slots=True)
class BotConfig:
    """One `[bots.NAME]` table: what to run and how to keep it running."""

    name: str
    argv: tuple[str, ...]
    workers: int
    env: Mapping[str, str]
    cwd: Path
    restart: RestartMode
    stop_signal: signal.Signals
    stop_timeout_s: float
    backoff: Backoff
    max_restarts: int
    restart_window_s: float


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """The `[supervisor]` table."""

    run_dir: Path
    log_level: str = "info"
    log_format: LogFormat = LogFormat.AUTO
    shutdown_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, valid `supervisor.toml`. Bots keep their order in the file."""

    path: Path
    supervisor: SupervisorSettings
    bots: Mapping[str, BotConfig]


# ---------------------------------------------------------------- entry points


def load(path: Path | str) -> Config:
    """Read and validate the config file; raise ConfigError with every problem."""
    path = Path(path)
    raw = read_toml(path)
    problems: list[str] = []
    config = _parse(raw, path.resolve(), problems)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def load_run_dir(path: Path | str) -> Path:
    """Only `supervisor.run_dir`, for CLI clients: a typo elsewhere in the file
    must not stop `status` or `shutdown` of a running supervisor."""
    path = Path(path)
    raw = read_toml(path)
    problems: list[str] = []
    table = Table(raw.get("supervisor", {}), "supervisor", problems)
    run_dir = _take_run_dir(table, path.resolve().parent)
    if problems:
        raise ConfigError(problems)
    return run_dir


def read_toml(path: Path) -> dict[str, Any]:
    """Parse TOML; a syntax error names file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read config: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: cannot read config: not UTF-8 ({e.reason})"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([_toml_error(path, str(e))]) from None


def _toml_error(path: Path, message: str) -> str:
    m = re.match(r"^(.*) \(at line (\d+), column (\d+)\)$", message)
    if m:
        return f"{path}:{m[2]}:{m[3]}: invalid TOML: {m[1]}"
    m = re.match(r"^(.*) \(at end of document\)$", message)
    if m:
        line = path.read_text(encoding="utf-8").count("\n") + 1
        return f"{path}:{line}: invalid TOML: {m[1]} (at end of file)"
    return f"{path}: invalid TOML: {message}"


# ---------------------------------------------------------------- the schema


def _parse(raw: dict[str, Any], path: Path, problems: list[str]) -> Config | None:
    top = Table(raw, "", problems)
    base = path.parent
    sup = top.sub("supervisor")
    settings = SupervisorSettings(
        run_dir=_take_run_dir(sup, base),
        log_level=sup.take("log_level", choice("debug", "info", "warning", "error"), "info"),
        log_format=sup.take("log_format", enum_choice(LogFormat), LogFormat.AUTO),
        shutdown_timeout_s=sup.take("shutdown_timeout_s", duration, 30.0),
    )
    sup.finish()
    bots_table = top.sub("bots")
    bots: dict[str, BotConfig] = {}
    for name, raw_bot in bots_table.raw.items():
        bots_table.used.add(name)
        bot = _parse_bot(name, Table(raw_bot, f"bots.{name}", problems), base)
        if bot is not None:
            bots[name] = bot
    top.finish()
    if problems:
        return None
    return Config(path=path, supervisor=settings, bots=MappingProxyType(bots))


def _take_run_dir(table: Table, base: Path) -> Path:
    run_dir = table.take("run_dir", directory_path(base), base / ".supervisor")
    longest = len(os.fsencode(run_dir)) + len(_LONGEST_SOCKET_NAME)
    if longest > _MAX_SOCKET_PATH:
        table.problems.append(
            f"{table.key_path('run_dir')}: too long for unix sockets "
            f"({longest} bytes with the socket name, at most {_MAX_SOCKET_PATH}); "
            "choose a shorter directory"
        )
    return run_dir


def _parse_bot(name: str, table: Table, base: Path) -> BotConfig | None:
    start = len(table.problems)
    if not _BOT_NAME.match(name):
        table.problems.append(
            f"{table.path}: bot names use letters, digits, '_', '.' and '-' "
            "(at most 64, starting with a letter or digit)"
        )
    cwd = table.take("cwd", existing_directory(base), base)
    env: Mapping[str, str] = table.take("env", env_table, MappingProxyType({}))
    argv = _take_argv(table, cwd, env)
    default_backoff = Backoff()
    backoff = Backoff(
        initial_s=table.take("backoff_initial_s", duration, default_backoff.initial_s),
        factor=table.take("backoff_factor", number(minimum=1.0), default_backoff.factor),
        max_s=table.take("backoff_max_s", duration, default_backoff.max_s),
        jitter=table.take("backoff_jitter", number(0.0, 1.0), default_backoff.jitter),
        reset_after_s=table.take("backoff_reset_s", duration, default_backoff.reset_after_s),
    )
    bot = BotConfig(
        name=name,
        argv=argv,
        workers=table.take("workers", integer(minimum=0), 1),
        env=env,
        cwd=cwd,
        restart=table.take("restart", enum_choice(RestartMode), RestartMode.ALWAYS),
        stop_signal=table.take("stop_signal", signal_name, signal.SIGTERM),
        stop_timeout_s=table.take("stop_timeout_s", duration, 10.0),
        backoff=backoff,
        max_restarts=table.take("max_restarts", integer(minimum=1), 10),
        restart_window_s=table.take("restart_window_s", duration, 60.0),
    )
    table.finish()
    return bot if len(table.problems) == start else None


def _take_argv(table: Table, cwd: Path, env: Mapping[str, str]) -> tuple[str, ...]:
    has_command, has_module = table.has("command"), table.has("module")
    command: tuple[str, ...] = table.take("command", argv_list, ())
    module = table.take("module", module_spec, "")
    if has_command and has_module:
        table.problems.append(f'{table.path}: give "command" or "module", not both')
    elif not (has_command or has_module):
        table.problems.append(f'{table.path}: needs "command" (an argv list) or "module"')
    elif module:
        if ":" in module:
            return (sys.executable, "-m", "supervisor.runner", module)
        return (sys.executable, "-m", module)
    elif command and not _executable_exists(command[0], cwd, env):
        table.problems.append(
            f'{table.key_path("command")}: "{command[0]}" is not an executable '
            + ("file" if "/" in command[0] else "on PATH")
        )
    return command


def _executable_exists(program: str, cwd: Path, env: Mapping[str, str]) -> bool:
    if "/" in program:
        candidate = cwd / program
        return candidate.is_file() and os.access(candidate, os.X_OK)
    return shutil.which(program, path=env.get("PATH", os.environ.get("PATH"))) is not None
