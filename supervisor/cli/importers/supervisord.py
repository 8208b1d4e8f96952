"""supervisord's INI -> bots.

Each `[program:x]` becomes `[bots.x]`; `[include] files =` (globs relative to the main
file, as supervisord reads them: only the main file's include counts) adds sections;
`%(program_name)s`, `%(process_num)s`, `%(group_name)s`, `%(numprocs)s`, `%(here)s` and
`%(ENV_X)s` are expanded. supervisord starts lower `priority` first and stops in reverse,
which is what ours does with the bots in file order, so bots are written sorted by priority.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from supervisor.cli.importers.common import (
    Bot,
    SourceError,
    Unconverted,
    directory,
    key_lines,
    line_of,
    parse_ini,
    read_source,
    render,
    sanitize_names,
)

FORMAT = "supervisord"
_EXPANSION = re.compile(r"%\(([A-Za-z0-9_]+)\)([-0 ]?\d*)([sd])")
_SIZE = re.compile(r"^\s*(\d+)\s*(kb|mb|gb)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}  # supervisord's are binary
_SELF_SECTIONS = ("supervisord", "supervisorctl", "unix_http_server", "inet_http_server")
_NO_OUTPUT_FILE = "ours writes each worker's output under run_dir/logs/BOT/"
_WHY = {
    "stdout_logfile": _NO_OUTPUT_FILE,
    "stderr_logfile": _NO_OUTPUT_FILE,
    "redirect_stderr": "ours keeps stdout and stderr of a worker in one file",
    "stderr_logfile_maxbytes": "ours rotates stdout and stderr together (log_max_bytes)",
    "stderr_logfile_backups": "ours rotates stdout and stderr together (log_backups)",
    "autostart": "every bot starts with the supervisor (workers = 0 keeps it at none)",
    "numprocs_start": "worker slots count from 0",
    "exitcodes": "on-failure restarts on any exit code but 0",
}


@dataclass(frozen=True, slots=True)
class Section:
    file: Path
    name: str
    line: int
    options: dict[str, str]
    lines: dict[str, int]  # key -> its line

    @property
    def where(self) -> str:
        return f"{self.file.name}:{self.line} [{self.name}]"

    def at(self, key: str) -> str:
        """ "file:line: [section] key", the line being the key's own."""
        return f"{self.file}:{self.lines.get(key, self.line)}: [{self.name}] {key}"


def convert(path: Path, env: Mapping[str, str]) -> tuple[str, list[Unconverted]]:
    """(supervisor.toml text, what did not carry over) of a supervisord config file."""
    sections = read_sections(path.absolute())  # %(here)s is absolute
    general: list[Unconverted] = []
    groups = _groups(sections, general)
    bots: list[tuple[int, Bot]] = []
    for section in sections:
        kind, _, name = section.name.partition(":")
        if kind == "program" and name:
            bots.append(_program(section, name, groups.get(name, ""), env))
        elif kind not in ("group", "include"):
            general.append(Unconverted(section.file.name, section.name, "", _section_why(kind)))
    ordered = [bot for _, bot in sorted(bots, key=lambda pair: pair[0])]
    sanitize_names(ordered)
    dropped = general + [item for bot in ordered for item in bot.unconverted]
    return render(str(path), FORMAT, ordered, general), dropped


def _section_why(kind: str) -> str:
    if kind in _SELF_SECTIONS or kind == "rpcinterface":
        return "supervisord's own settings; ours are in [supervisor]"
    if kind == "eventlistener":
        return "no event listeners here; `supervisor events` streams fleet events"
    return "no equivalent section here"


# ---------------------------------------------------------------- reading


def read_sections(path: Path) -> list[Section]:
    """The main file's sections, then those of its includes in glob order."""
    sections = _parse(path)
    include = next((s for s in sections if s.name == "include"), None)
    if include is None:
        return sections
    for pattern in include.options.get("files", "").split():
        expanded = _expand(pattern, {"here": str(path.parent)}, include, "files")
        for found in sorted(glob.glob(os.path.join(path.parent, expanded))):
            sections += _parse(Path(found))
    return sections


def _parse(path: Path) -> list[Section]:
    text = read_source(path)
    parser = parse_ini(path, text)
    sections = []
    for name in parser.sections():
        header = line_of(text, f"[{name}]")
        options = {k.lower(): v for k, v in parser[name].items()}
        sections.append(Section(path, name, header, options, key_lines(text, header)))
    return sections


def _expand(text: str, names: Mapping[str, str], section: Section, key: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match[1] in names and match[3] == "s":
            return f"%{match[2]}s" % names[match[1]]
        if match[1] in names and names[match[1]].isdigit():
            return f"%{match[2]}d" % int(names[match[1]])
        known = ", ".join(sorted(n for n in names if not n.startswith("ENV_")))
        raise SourceError(
            f"{section.at(key)}: unknown expansion "
            f"%({match[1]})s (expected one of {known} or ENV_NAME)"
        )

    return _EXPANSION.sub(one, text).replace("%%", "%")


def _groups(sections: list[Section], general: list[Unconverted]) -> dict[str, str]:
    """program name -> its group's name; each group listed as not converted."""
    found: dict[str, str] = {}
    for section in sections:
        kind, _, name = section.name.partition(":")
        if kind != "group":
            continue
        programs = section.options.get("programs", "")
        for program in (p.strip() for p in programs.split(",")):
            if program:
                found[program] = name
        why = "no bot groups here; its programs are imported as separate bots"
        for key, value in section.options.items():
            general.append(Unconverted(section.file.name, section.name, f"{key} = {value}", why))
    return found


# ---------------------------------------------------------------- one program


def _program(section: Section, name: str, group: str, env: Mapping[str, str]) -> tuple[int, Bot]:
    """(priority, bot) of one [program:x]."""
    names = _names(section, name, group, env)
    raw = {k: _expand(v, names, section, k) for k, v in section.options.items()}
    bot = Bot(name, section.where, section.file.name, section.name, section.file.parent)
    _note_expansions(bot, section, group)
    raw.pop("process_name", None)
    try:
        priority = _integer(raw.pop("priority", "999"))
    except SourceError as e:
        raise _located(section, "priority", e) from None
    if "priority" in section.options:
        bot.notes.append(f"priority {priority}: bots are written lowest priority first")
    bot.keys["command"] = _command(raw.pop("command", ""), section)
    bot.keys["restart"] = "on-failure"  # supervisord's default autorestart is "unexpected"
    for key, value in raw.items():
        handler = _HANDLERS.get(key)
        if handler is None:
            bot.drop(key, value, _WHY.get(key, "no equivalent here"))
            continue
        try:
            handler(bot, value)
        except SourceError as e:
            raise _located(section, key, e) from None
    return priority, bot


def _note_expansions(bot: Bot, section: Section, group: str) -> None:
    """What the names and expansions of a program mean here."""
    if group:
        bot.notes.append(f"in [group:{group}] (ours has no groups)")
    if "process_name" in section.options:
        bot.notes.append("process_name: workers are named BOT:SLOT here")
    if any("%(ENV_" in value for value in section.options.values()):
        bot.notes.append("%(ENV_X)s was expanded from the environment of `supervisor import`")
    for key, value in section.options.items():
        if "%(process_num)" in value and key != "process_name":
            why = "expanded to 0: every worker gets the same; its slot is in $SUPERVISOR_WORKER"
            bot.drop(key, value, why)


def _located(section: Section, key: str, error: SourceError) -> SourceError:
    """The error prefixed with the file, line, section and key it is about."""
    return SourceError(f"{section.at(key)}: {error}")


def _names(section: Section, name: str, group: str, env: Mapping[str, str]) -> dict[str, str]:
    names = {f"ENV_{k}": v for k, v in env.items()}
    return names | {
        "program_name": name,
        "group_name": group or name,
        "process_num": "0",
        "numprocs": section.options.get("numprocs", "1"),
        "here": str(section.file.parent),
        "host_node_name": env.get("HOSTNAME", "localhost"),
    }


def _command(text: str, section: Section) -> list[str]:
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise SourceError(f"{section.at('command')}: {e}") from None
    if not argv:
        raise SourceError(
            f"{section.file}:{section.line}: [{section.name}] expected command = PROGRAM ARGS"
        )
    return argv


# ---------------------------------------------------------------- option -> keys


def _autorestart(bot: Bot, value: str) -> None:
    modes = {"true": "always", "false": "never", "unexpected": "on-failure"}
    if value.lower() in modes:
        bot.keys["restart"] = modes[value.lower()]
    else:
        bot.drop("autorestart", value, "expected true, false or unexpected")


def _startretries(bot: Bot, value: str) -> None:
    bot.keys["max_restarts"] = max(1, _integer(value))
    bot.notes.append(
        f"startretries = {value}: supervisord gives up after that many failed starts; "
        "ours fails the bot after max_restarts restarts within restart_window_s"
    )


def _group_signal(bot: Bot, value: str) -> None:
    if "the whole process group" not in "".join(bot.notes):
        bot.notes.append("stopasgroup/killasgroup: ours always signals the whole process group")


def _log_bytes(bot: Bot, value: str) -> None:
    size = _SIZE.match(value)
    if size is None:
        bot.drop("stdout_logfile_maxbytes", value, "expected bytes such as 50MB")
        return
    count = int(size[1]) * _SIZE_UNITS[(size[2] or "").lower()]
    if 0 < count < 1024:
        bot.drop("stdout_logfile_maxbytes", value, "ours rotates at 1KiB or more")
    else:
        bot.keys["log_max_bytes"] = count


def _key(name: str, convert: Callable[[str], object]) -> Callable[[Bot, str], None]:
    def handle(bot: Bot, value: str) -> None:
        bot.keys[name] = convert(value)  # type: ignore[assignment]

    return handle


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SourceError(f"expected a whole number, got {value!r}") from None


def _signal(value: str) -> str:
    upper = value.strip().upper()
    return upper if upper.startswith("SIG") else "SIG" + upper


def environment(text: str) -> dict[str, str]:
    """supervisord's `KEY="val",KEY2=val` (quotes optional; commas inside quotes stay)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace, lexer.whitespace_split = ",", True
    env: dict[str, str] = {}
    try:
        for item in lexer:
            name, sep, value = item.strip().partition("=")
            if not sep or not name.strip():
                raise ValueError(f"expected KEY=value, got {item.strip()!r}")
            env[name.strip()] = value
    except ValueError as e:
        raise SourceError(str(e)) from None
    return env


_HANDLERS: dict[str, Callable[[Bot, str], None]] = {
    "numprocs": _key("workers", _integer),
    "directory": lambda bot, v: bot.keys.update(cwd=directory(v, bot.base)),
    "environment": _key("env", environment),
    "autorestart": _autorestart,
    "startsecs": _key("ready_after_s", _integer),
    "startretries": _startretries,
    "stopsignal": _key("stop_signal", _signal),
    "stopwaitsecs": _key("stop_timeout_s", _integer),
    "stopasgroup": _group_signal,
    "killasgroup": _group_signal,
    "user": _key("user", str),
    "umask": _key("umask", str),
    "stdout_logfile_maxbytes": _log_bytes,
    "stdout_logfile_backups": _key("log_backups", _integer),
}
