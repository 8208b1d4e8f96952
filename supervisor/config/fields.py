"""Reading TOML tables into typed values, with errors that name their key path.

`Table` tracks which keys were read so that the rest can be reported as
unknown, with a did-you-mean hint; the parsers below turn raw TOML values
into typed ones or raise `BadValue` with "expected ..., got ...". The main
config and every plugin's `[plugins.NAME]` table are read with these.
"""

from __future__ import annotations

import enum
import math
import os
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from difflib import get_close_matches
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)

_MODULE = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class BadValue(Exception):
    """A value is wrong; the message says what was expected and what came."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key  # the sub-key at fault, inside a table value


class Table:
    """A TOML table being read: remembers which keys were used, reports the rest."""

    def __init__(self, raw: object, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        self.used: set[str] = set()
        if isinstance(raw, dict):
            self.raw: dict[str, Any] = raw
        else:
            self.raw = {}
            problems.append(f"{path}: expected a table, got {_show(raw)}")

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.raw

    def take(self, key: str, parse: Callable[[Any], T], default: T) -> T:
        """The parsed value of `key`, or `default` if absent or wrong (and reported)."""
        self.used.add(key)
        if key not in self.raw:
            return default
        try:
            return parse(self.raw[key])
        except BadValue as e:
            where = f"{self.key_path(key)}.{e.key}" if e.key else self.key_path(key)
            self.problems.append(f"{where}: {e}")
            return default

    def sub(self, key: str) -> Table:
        self.used.add(key)
        return Table(self.raw.get(key, {}), self.key_path(key), self.problems)

    def finish(self, known: list[str] | None = None) -> None:
        """Report every key that was not taken, with a suggestion."""
        candidates = known if known is not None else sorted(self.used)
        for key in self.raw:
            if key not in self.used:
                self.problems.append(
                    f"{self.key_path(key)}: unknown key{_suggest(key, candidates)}"
                )


def nul_problems(raw: object, path: str = "") -> list[str]:
    """A line per string (key or value) with a NUL in it, anywhere in the file. No setting has
    a use for one, and os/exec calls raise ValueError on it, so it is refused before any
    value is read (found by tests/unit/test_fuzz.py: run_dir or cwd = "\\u0000" crashed)."""
    found: list[str] = []
    if isinstance(raw, str):
        if "\0" in raw:
            found.append(f"{path or '(top)'}: a NUL character is not allowed")
    elif isinstance(raw, dict):
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            if "\0" in str(key):
                found.append(f"{_CONTROL.sub('?', where)}: a NUL character is not allowed in a key")
            else:
                found += nul_problems(value, where)
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            found += nul_problems(value, f"{path}[{i}]")
    return found


def _suggest(key: str, candidates: list[str]) -> str:
    close = get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{close[0]}"?'
    if candidates:
        return "; known keys: " + ", ".join(candidates)
    return ""


def _show(value: object) -> str:
    """A value as the user wrote it in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value.replace("\\", "\\\\").replace('"', '\\"')
        # One problem, one line: control characters are shown as TOML escapes.
        shown = _CONTROL.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04X}"), shown)
        return '"' + (shown if len(shown) <= 80 else shown[:77] + "...") + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def integer(minimum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or (minimum is not None and value < minimum):
            bound = f" >= {minimum}" if minimum is not None else ""
            raise BadValue(f"expected an integer{bound}, got {_show(value)}")
        return int(value)

    return parse


def number(minimum: float | None = None, maximum: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        in_range = ok and (minimum is None or value >= minimum)
        in_range = in_range and (maximum is None or value <= maximum)
        if not in_range:
            raise BadValue(f"expected a number{_range(minimum, maximum)}, got {_show(value)}")
        return float(value)

    return parse


def positive(value: Any) -> float:
    """A number > 0 (targets, factors)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BadValue(f"expected a number > 0, got {_show(value)}")
    return float(value)


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" >= {minimum:g}"
    return f" <= {maximum:g}" if maximum is not None else ""


def duration(value: Any) -> float:
    """Seconds as a number, or a string such as "500ms", "30s", "5m", "1m30s"."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
            return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    raise BadValue(
        'expected a duration (seconds >= 0, or a string such as "500ms", "30s", "5m"), '
        f"got {_show(value)}"
    )


def choice(*options: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in options:
            listed = ", ".join(f'"{o}"' for o in options)
            raise BadValue(f"expected one of {listed}, got {_show(value)}")
        return str(value)

    return parse


def enum_choice(kind: type[E]) -> Callable[[Any], E]:
    check = choice(*(member.value for member in kind))
    return lambda value: kind(check(value))


def string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadValue(f"expected a non-empty string, got {_show(value)}")
    return value


def directory_path(base: Path) -> Callable[[Any], Path]:
    """A path relative to the config file's directory."""

    def parse(value: Any) -> Path:
        return Path(base, os.path.expanduser(string(value))).resolve()

    return parse


def existing_directory(base: Path) -> Callable[[Any], Path]:
    """A directory that must exist, relative to the config file's directory."""
    resolve = directory_path(base)

    def parse(value: Any) -> Path:
        path = resolve(value)
        if not path.is_dir():
            raise BadValue(f"no such directory: {path}")
        return path

    return parse


def argv_list(value: Any) -> tuple[str, ...]:
    """An argv list; a plain string is split as a shell would (no expansion)."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as e:
            raise BadValue(f"cannot split command: {e}") from None
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise BadValue(f"expected a non-empty list of strings (argv), got {_show(value)}")
    if not value[0]:
        raise BadValue("the program (first element) is empty")
    return tuple(value)


def module_spec(value: Any) -> str:
    if not isinstance(value, str) or not _MODULE.match(value):
        raise BadValue(
            f'expected "package.module" or "package.module:function", got {_show(value)}'
        )
    return value


def signal_name(value: Any) -> signal.Signals:
    """ "SIGTERM", "TERM", "term" or a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return signal.Signals(value)
        except ValueError:
            pass
    elif isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name in signal.Signals.__members__:
            return signal.Signals[name]
    raise BadValue(f'expected a signal name such as "SIGTERM" or "INT", got {_show(value)}')


def env_table(value: Any) -> Mapping[str, str]:
    """Environment variables: strings as they are; integers and finite floats written as Python
    writes them (3 -> "3", 0.5 -> "0.5", 1e3 -> "1000.0"). Everything else is an error: booleans
    (true -> "True" or "1" or "true"? each program reads it differently), dates, arrays, tables,
    inf/nan, and a NUL anywhere (exec cannot pass it; the spawn would fail at every restart)."""
    if not isinstance(value, dict):
        raise BadValue(f"expected a table of NAME = value, got {_show(value)}")
    env: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise BadValue(f"expected a string or a number, got {_show(item)}", key=key)
        if isinstance(item, float) and not math.isfinite(item):
            raise BadValue(f"expected a string or a finite number, got {item}", key=key)
        if not key or "=" in key or "\0" in key:
            raise BadValue("not a valid environment variable name", key=key)
        if isinstance(item, str) and "\0" in item:
            raise BadValue("a value cannot contain a NUL character", key=key)
        env[key] = str(item)
    return MappingProxyType(env)
