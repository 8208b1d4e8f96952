"""A PM2 ecosystem file (JSON, or a .config.js that is plain data) -> bots.

Each entry of `apps` becomes a bot: `[interpreter, interpreter_args..., script, args...]`
is its command (the interpreter guessed from the script's extension, as PM2 does, unless
given; "none" runs the script itself). Durations in milliseconds become ours.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from supervisor.cli.importers.common import (
    Bot,
    SourceError,
    Unconverted,
    Value,
    directory,
    read_source,
    render,
    sanitize_names,
    seconds,
)
from supervisor.cli.importers.jsdata import to_json

FORMAT = "pm2"
_INTERPRETERS = {
    ".js": "node", ".cjs": "node", ".mjs": "node", ".py": "python3", ".sh": "bash",
    ".rb": "ruby", ".php": "php", ".pl": "perl", ".coffee": "coffee", ".ts": "ts-node",
}  # fmt: skip
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)B?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"\d+(?:\.\d+)?(?:ms|s|m|h)")  # fullmatch
_LOG_WHY = "ours writes each worker's output under run_dir/logs/BOT/"
_WHY = {
    "cron_restart": "no scheduled restarts here yet",
    "watch": "no restart on file changes here",
    "ignore_watch": "no restart on file changes here",
    "watch_options": "no restart on file changes here",
    "out_file": _LOG_WHY,
    "error_file": _LOG_WHY,
    "log_file": _LOG_WHY,
    "merge_logs": _LOG_WHY,
    "combine_logs": _LOG_WHY,
    "log_date_format": "ours stamps every line with UTC time",
    "wait_ready": 'ours: readiness = "sdk" (the worker says READY through the SDK)',
    "exec_mode": "no node cluster mode: each worker is its own process (no shared port)",
    "instances": "no count per CPU core: set workers (or [bots.NAME.scale])",
}


def convert(path: Path, env: Mapping[str, str]) -> tuple[str, list[Unconverted]]:
    """(supervisor.toml text, what did not carry over) of an ecosystem file."""
    data = load(path)
    general = [
        Unconverted(path.name, "", f"{key}", "no equivalent here") for key in data if key != "apps"
    ]
    bots = [_app(app, index, path) for index, app in enumerate(data["apps"])]
    sanitize_names(bots)
    dropped = general + [item for bot in bots for item in bot.unconverted]
    return render(str(path), FORMAT, bots, general), dropped


def load(path: Path) -> dict[str, Any]:
    """The ecosystem object: {"apps": [...], ...}; SourceError with the line otherwise."""
    text = read_source(path)
    if path.suffix in (".js", ".cjs", ".mjs"):
        text = to_json(text, str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceError(f"{path}:{e.lineno}: expected JSON: {e.msg}") from None
    if isinstance(data, list):
        data = {"apps": data}  # pm2 also takes a bare array of apps
    if not isinstance(data, dict) or not isinstance(data.get("apps"), list):
        raise SourceError(f'{path}:1: expected an object with "apps": [...]')
    if not all(isinstance(app, dict) for app in data["apps"]):
        raise SourceError(f'{path}: expected every entry of "apps" to be an object')
    return data


def _app(app: dict[str, Any], index: int, path: Path) -> Bot:
    script = app.get("script")
    if not isinstance(script, str) or not script:
        raise SourceError(f'{path}: apps[{index}]: expected "script": "PROGRAM"')
    name = str(app.get("name") or Path(script).stem)
    section = f"apps[{index}] {name}"
    bot = Bot(name, f"{path.name} {section}", path.name, section, path.absolute().parent)
    bot.keys["command"] = _command(app, script, bot)
    bot.keys["stop_timeout_s"] = "1600ms"  # PM2's default kill_timeout (ours: 10 s)
    for key, value in app.items():
        if key in ("name", "script", "args", "interpreter", "interpreter_args", "node_args"):
            continue
        handler = _HANDLERS.get(key)
        if key == "instances" and isinstance(value, int) and value > 0:
            bot.keys["workers"] = value
        elif key == "exec_mode" and value == "fork":
            continue  # each worker its own process: ours too
        elif handler is not None:
            try:
                handler(bot, value)
            except SourceError as e:
                raise SourceError(f"{path}: {section}: {key}: {e}") from None
        elif key.startswith("env_"):
            bot.drop(key, json.dumps(value), "PM2's --env sets; put the one you run into env")
        else:
            bot.drop(key, json.dumps(value), _WHY.get(key, "no equivalent here"))
    return bot


def _command(app: dict[str, Any], script: str, bot: Bot) -> list[str]:
    interpreter = app.get("interpreter") or _INTERPRETERS.get(Path(script).suffix, "none")
    argv = [] if interpreter == "none" else [str(interpreter)]
    for key in ("interpreter_args", "node_args"):
        if key in app and not argv:
            bot.drop(key, json.dumps(app[key]), 'no interpreter to pass it to ("none")')
        elif key in app:
            argv += _words(app[key], bot)
    return [*argv, script, *_words(app.get("args", []), bot)]


def _words(value: Any, bot: Bot) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    try:
        return shlex.split(str(value))
    except ValueError as e:
        raise SourceError(f"{bot.origin}: args: {e}") from None


# ---------------------------------------------------------------- option -> keys


def _ms(value: Any, bot: Bot, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SourceError(f"expected milliseconds >= 0, got {value!r}")
    return float(value) / 1000


def _restart_delay(bot: Bot, value: Any) -> None:
    delay = seconds(_ms(value, bot, "restart_delay"))
    bot.keys |= {"backoff_initial_s": delay, "backoff_factor": 1.0, "backoff_max_s": delay}
    bot.notes.append("restart_delay: ours restarts the first failure at once, then waits")


def _exp_backoff(bot: Bot, value: Any) -> None:
    # PM2 multiplies by 1.5 up to 15 s and resets once the app stays up 30 s.
    initial = seconds(_ms(value, bot, "exp_backoff_restart_delay"))
    bot.keys |= {"backoff_initial_s": initial, "backoff_factor": 1.5, "backoff_max_s": 15}
    bot.keys["backoff_reset_s"] = 30


def _memory(bot: Bot, value: Any) -> None:
    match = _MEMORY.match(str(value))
    if match is None or isinstance(value, bool):
        bot.drop("max_memory_restart", value, 'expected a size such as "300M" or "1G"')
        return
    scale = {"": 1 / 1024**2, "K": 1 / 1024, "M": 1.0, "G": 1024.0}[match[2].upper()]
    megabytes = float(match[1]) * scale
    bot.keys["max_memory_mb"] = int(megabytes) if megabytes == int(megabytes) else megabytes


def _autorestart(bot: Bot, value: Any) -> None:
    bot.keys["restart"] = "always" if value else "never"


def _duration(name: str) -> Callable[[Bot, Any], None]:
    def handle(bot: Bot, value: Any) -> None:
        if isinstance(value, str) and _DURATION.fullmatch(value.strip()):
            bot.keys[name] = value.strip()
        else:
            bot.keys[name] = seconds(_ms(value, bot, name))

    return handle


def _env(bot: Bot, value: Any) -> None:
    if not isinstance(value, dict):
        raise SourceError("expected an object of NAME: value")
    bot.keys["env"] = {str(k): _env_text(v) for k, v in value.items()}


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _count(value: Any, bot: Bot) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SourceError(f"expected a whole number, got {value!r}")
    return value


def _text(value: Any, bot: Bot) -> str:
    if not isinstance(value, str) or not value:
        raise SourceError(f"expected a non-empty string, got {value!r}")
    return value


def _copy(name: str, kind: type) -> Callable[[Bot, Any], None]:
    def handle(bot: Bot, value: Any) -> None:
        if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
            raise SourceError(f"expected a {kind.__name__}, got {value!r}")
        bot.keys[name] = cast(Value, value)

    return handle


_HANDLERS: dict[str, Callable[[Bot, Any], None]] = {
    "cwd": lambda bot, v: bot.keys.update(cwd=directory(_text(v, bot), bot.base)),
    "env": _env,
    "autorestart": _autorestart,
    "max_restarts": lambda bot, v: bot.keys.update(max_restarts=max(1, _count(v, bot))),
    "min_uptime": _duration("ready_after_s"),
    "restart_delay": _restart_delay,
    "exp_backoff_restart_delay": _exp_backoff,
    "max_memory_restart": _memory,
    "kill_timeout": _duration("stop_timeout_s"),
    "user": _copy("user", str),
    "uid": _copy("user", str),
    "gid": _copy("group", str),
}
