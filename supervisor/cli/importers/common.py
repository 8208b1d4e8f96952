"""What every importer shares: the bot being built, the list of what did not carry over,
source errors, and a tiny TOML writer (tomllib only reads).

An importer turns another supervisor's file into `Bot`s and `Unconverted`s; `render` writes
them as `supervisor.toml` text, each bot under a comment that says where it came from and
what of it was not carried over:

    # From supervisord.conf:12 [program:web]
    # not converted: stdout_logfile = /var/log/web.log (ours: under run_dir/logs/BOT/)
    [bots.web]
    command = ["python3", "-m", "http.server"]
"""

from __future__ import annotations

import configparser
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.errors import ExitCode, SupervisorError

# A value our writer can print: what the bot tables of supervisor.toml use.
Value = str | int | float | bool | list[str] | Mapping[str, str | int]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # fullmatch: `$` would let a trailing newline in
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class SourceError(SupervisorError):
    """The file to import cannot be read or parsed; one line with file, line and what was
    expected."""

    exit_code = ExitCode.CONFIG


@dataclass(frozen=True, slots=True)
class Unconverted:
    """One option of the source that has no equivalent here."""

    file: str
    section: str
    key: str
    why: str

    def __str__(self) -> str:
        where = f"{self.file} [{self.section}]" if self.section else self.file
        return f"{where} {self.key}: {self.why}" if self.key else f"{where}: {self.why}"


@dataclass(slots=True)
class Bot:
    """A `[bots.NAME]` table being built, with its origin and its notes."""

    name: str
    origin: str  # "supervisord.conf:12 [program:web]"
    file: str = ""  # of its source, for Unconverted
    section: str = ""
    base: Path = Path()  # the source file's directory: relative paths start there
    keys: dict[str, Value] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # carried over with a difference: say it
    unconverted: list[Unconverted] = field(default_factory=list)

    def drop(self, key: str, value: object, why: str) -> None:
        """List `key = value` as not carried over, and why."""
        self.unconverted.append(Unconverted(self.file, self.section, f"{key} = {value}", why))


def read_source(path: Path) -> str:
    """The file's text; SourceError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SourceError(f"{path}: cannot read it: {reason}") from None


def directory(value: str, base: Path) -> str:
    """A source's directory made absolute against the source file's own (ours would read a
    relative one against the output file's)."""
    return os.path.normpath(os.path.join(base, os.path.expanduser(value.strip())))


def line_of(text: str, needle: str) -> int:
    """The 1-based line where `needle` first occurs at a line start (0 when it does not)."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(needle):
            return number
    return 0


def key_lines(text: str, header_line: int) -> dict[str, int]:
    """Each `key = value` (or `key: value`) of the INI section whose header is on
    `header_line` -> its 1-based line, so an error can point at the key itself."""
    found: dict[str, int] = {}
    lines = text.splitlines()
    for number in range(header_line + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if line.startswith("["):
            break
        match = re.match(r"([^=:\s;#][^=:]*?)\s*[=:]", line)
        if match:
            found.setdefault(match[1].lower(), number)
    return found


def sanitize_names(bots: list[Bot]) -> None:
    """Make every name fit our pattern and be unique, noting each change."""
    taken: set[str] = set()
    for bot in bots:
        name = _NOT_IN_NAME.sub("-", bot.name).lstrip("_.-")[:64] or "bot"
        base, n = name, 2
        while name in taken:
            suffix = f"-{n}"
            name, n = base[: 64 - len(suffix)] + suffix, n + 1
        if name != bot.name:
            bot.notes.append(f"renamed from {bot.name!r} (names use letters, digits, _ . -)")
        taken.add(name)
        bot.name = name


# ---------------------------------------------------------------- the writer


def render(source: str, fmt: str, bots: list[Bot], general: list[Unconverted]) -> str:
    """supervisor.toml text for `bots`; `general` lists what belongs to no bot."""
    lines = [
        comment(f"Imported by `supervisor import` from {source} ({fmt})."),
        "# Check it with `supervisor check -c FILE` before running it.",
    ]
    if general:
        lines.append("#")
        lines += [comment(f"not converted: {item}") for item in general]
    for bot in bots:
        lines += ["", comment(f"From {bot.origin}")]
        lines += [comment(f"note: {note}") for note in bot.notes]
        lines += [comment(f"not converted: {i.key} ({i.why})") for i in bot.unconverted]
        lines.append(f"[bots.{key(bot.name)}]")
        lines += [f"{key(k)} = {value(v)}" for k, v in bot.keys.items()]
    return "\n".join(lines) + "\n"


def comment(text: str) -> str:
    """One comment line, whatever the text holds (a newline would end the comment)."""
    return "# " + "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else string(name)


def value(v: Value) -> str:
    """One TOML value: strings, numbers, booleans, lists of strings, flat inline tables."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"TOML has no place for {v!r} here")
        return repr(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, list):
        return "[" + ", ".join(string(item) for item in v) + "]"
    return "{ " + ", ".join(f"{key(k)} = {value(item)}" for k, item in v.items()) + " }"


def string(text: str) -> str:
    """A TOML basic string: backslash, quote and control characters escaped."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def seconds(value: float) -> str | int | float:
    """A duration as our config writes it: whole seconds as an int, else "NNNms"."""
    if value == int(value):
        return int(value)
    return f"{round(value * 1000)}ms"


def parse_ini(path: Path, text: str) -> configparser.RawConfigParser:
    """An INI file as supervisord and Circus read it (`;` and `#` comments, keys keep their
    case), or SourceError with the file and line."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as e:
        raise SourceError(f"{path}:{e.lineno}: expected a [section] header first") from None
    except configparser.ParsingError as e:
        lineno, line = e.errors[0]
        raise SourceError(f"{path}:{lineno}: expected key = value, got {line.strip()}") from None
    except configparser.Error as e:
        raise SourceError(f"{path}: {e.message}") from None
    return parser
