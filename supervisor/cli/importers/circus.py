"""Circus's INI -> bots.

Each `[watcher:x]` becomes `[bots.x]` (`cmd` + `args` -> command), with `[env:x]` as its
env; `[plugin:flapping]` (attempts within window seconds) becomes every bot's crash-loop
limit (max_restarts within restart_window_s), a watcher's own `flapping.*` winning. Circus
starts the highest `priority` first, so bots are written in that order (ours starts in
file order and stops in reverse). `$(circus.env.X)` is expanded from the environment.
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path

from supervisor.cli.importers.common import (
    Bot,
    SourceError,
    Unconverted,
    directory,
    line_of,
    parse_ini,
    read_source,
    render,
    sanitize_names,
)

FORMAT = "circus"
_VARIABLE = re.compile(r"\$\(circus\.([A-Za-z0-9_.]+)\)")
_WHY = {
    "copy_env": "ours always passes the supervisor's environment, plus env",
    "singleton": "workers = 1 is the nearest",
    "use_sockets": "no shared sockets here",
    "warmup_delay": "no delay between worker starts here",
    "max_age": "no restart by age here",
    "respawn": "expected true or false",
}


def convert(path: Path, env: Mapping[str, str]) -> tuple[str, list[Unconverted]]:
    """(supervisor.toml text, what did not carry over) of a circus.ini."""
    text = read_source(path)
    parser = parse_ini(path, text)
    general: list[Unconverted] = []
    flapping = _flapping(parser, path, general)
    bots: list[tuple[int, Bot]] = []
    for name in parser.sections():
        kind, _, rest = name.partition(":")
        if kind == "watcher" and rest:
            priority, bot = _watcher(_bot(path, text, name), parser, env)
            bot.keys |= {k: v for k, v in flapping.items() if k not in bot.keys}
            bots.append((priority, bot))
        elif kind == "env" and not parser.has_section(f"watcher:{rest}"):
            why = "no [watcher:x] of that name (one watcher per [env:x] here)"
            general.append(Unconverted(path.name, name, "", why))
        elif kind not in ("env", "plugin") or (kind == "plugin" and rest != "flapping"):
            why = "circus's own settings; ours are in [supervisor]" if kind == "circus" else ""
            general.append(Unconverted(path.name, name, "", why or "no equivalent section here"))
    ordered = [bot for _, bot in sorted(bots, key=lambda pair: -pair[0])]
    sanitize_names(ordered)
    dropped = general + [item for bot in ordered for item in bot.unconverted]
    return render(str(path), FORMAT, ordered, general), dropped


def _flapping(
    parser: configparser.RawConfigParser, path: Path, general: list[Unconverted]
) -> dict[str, int]:
    """Our crash-loop keys from [plugin:flapping]; its retry_in/max_retry listed."""
    if not parser.has_section("plugin:flapping"):
        return {}
    keys: dict[str, int] = {}
    for key, value in parser["plugin:flapping"].items():
        if key == "attempts":
            keys["max_restarts"] = max(1, _number(value, path, key))
        elif key == "window":
            keys["restart_window_s"] = _number(value, path, key)
        elif key != "use":
            why = "a failed bot stays down until `supervisor start BOT`"
            general.append(Unconverted(path.name, "plugin:flapping", f"{key} = {value}", why))
    return keys


def _number(value: str, path: Path, key: str) -> int:
    try:
        return round(float(value))
    except ValueError:
        raise SourceError(f"{path}: {key}: expected a number, got {value!r}") from None


def _bot(path: Path, text: str, section: str) -> Bot:
    origin = f"{path.name}:{line_of(text, f'[{section}]')} [{section}]"
    return Bot(section.partition(":")[2], origin, path.name, section, path.absolute().parent)


def _watcher(
    bot: Bot, parser: configparser.RawConfigParser, env: Mapping[str, str]
) -> tuple[int, Bot]:
    """(priority, bot) of one [watcher:x], with its [env:x]."""
    raw = {k.lower(): _expand(v, env, bot) for k, v in parser[bot.section].items()}
    env_section = f"env:{bot.name}"
    watcher_env = dict(parser[env_section]) if parser.has_section(env_section) else {}
    command = raw.pop("cmd", "") + " " + raw.pop("args", "")
    try:
        bot.keys["command"] = shlex.split(command)
    except ValueError as e:
        raise SourceError(f"{bot.origin}: cmd: {e}") from None
    if not bot.keys["command"]:
        raise SourceError(f"{bot.origin}: expected cmd = PROGRAM")
    priority = round(_float(raw.pop("priority", "0"), bot, "priority"))
    bot.keys["stop_timeout_s"] = 30  # circus's default graceful_timeout (ours: 10)
    if raw.get("copy_env", "false").lower() == "true":
        raw.pop("copy_env")  # ours always does
    elif "copy_env" not in raw:
        bot.notes.append("circus passes only [env:x] here; ours adds the supervisor's environment")
    if watcher_env:
        bot.keys["env"] = {k: _expand(v, env, bot) for k, v in watcher_env.items()}
    for key, value in raw.items():
        handler = _HANDLERS.get(key)
        if key.startswith("rlimit_"):
            _rlimit(bot, key, value)
        elif handler is not None:
            handler(bot, value)
        else:
            bot.drop(key, value, _WHY.get(key, "no equivalent here"))
    return priority, bot


def _expand(text: str, env: Mapping[str, str], bot: Bot) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name.startswith("env.") and name[4:] in env:
            return env[name[4:]]
        if name in ("wid", "worker_id"):
            why = "expanded to 0: every worker gets the same; its slot is in $SUPERVISOR_WORKER"
            bot.drop("$(circus.wid)", text, why)
            return "0"
        raise SourceError(f"{bot.origin}: unknown variable $(circus.{name})")

    return _VARIABLE.sub(one, text)


def _float(value: str, bot: Bot, key: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise SourceError(f"{bot.origin}: {key}: expected a number, got {value!r}") from None


def _respawn(bot: Bot, value: str) -> None:
    if value.lower() in ("true", "false"):
        bot.keys["restart"] = "always" if value.lower() == "true" else "never"
    else:
        bot.drop("respawn", value, _WHY["respawn"])


def _max_retry(bot: Bot, value: str) -> None:
    count = round(_float(value, bot, "max_retry"))
    if count < 0:
        bot.drop("max_retry", value, "ours always has a crash-loop limit (max_restarts)")
    else:
        bot.keys["max_restarts"] = max(1, count)


def _rlimit(bot: Bot, key: str, value: str) -> None:
    name = key.removeprefix("rlimit_")
    known = ("as", "core", "cpu", "data", "fsize", "memlock", "nofile", "nproc", "stack")
    if name not in known:
        bot.drop(key, value, "no such limit here")
        return
    current = bot.keys.get("rlimits")
    limits: dict[str, str | int] = dict(current) if isinstance(current, Mapping) else {}
    limits[name] = round(_float(value, bot, key))
    bot.keys["rlimits"] = limits


def _key(name: str, convert: Callable[[Bot, str], object]) -> Callable[[Bot, str], None]:
    def handle(bot: Bot, value: str) -> None:
        bot.keys[name] = convert(bot, value)  # type: ignore[assignment]

    return handle


def _signal(bot: Bot, value: str) -> str | int:
    upper = value.strip().upper()
    if upper.isdigit():
        return int(upper)
    return upper if upper.startswith("SIG") else "SIG" + upper


def _id(bot: Bot, value: str) -> str | int:
    return int(value) if value.strip().isdigit() else value.strip()


_HANDLERS: dict[str, Callable[[Bot, str], None]] = {
    "numprocesses": _key("workers", lambda bot, v: round(_float(v, bot, "numprocesses"))),
    "working_dir": _key("cwd", lambda bot, v: directory(v, bot.base)),
    "stop_signal": _key("stop_signal", _signal),
    "graceful_timeout": _key("stop_timeout_s", lambda bot, v: _float(v, bot, "graceful_timeout")),
    "max_retry": _max_retry,
    "respawn": _respawn,
    "uid": _key("user", _id),
    "gid": _key("group", _id),
    "flapping.attempts": _key("max_restarts", lambda bot, v: round(_float(v, bot, "attempts"))),
    "flapping.window": _key("restart_window_s", lambda bot, v: _float(v, bot, "window")),
}
