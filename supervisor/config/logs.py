"""The log-file keys: defaults in `[supervisor]`, overridden per bot in `[bots.NAME]`.

    log_files = true            # write each worker's output under run_dir/logs/BOT/
    log_file_format = "text"    # text | json (one JSON object per line)
    log_max_bytes = "10MiB"     # rotate a worker's file at this size; 0: never
    log_backups = 3             # rotated files kept per worker (older ones are deleted)
    log_compress = false        # gzip rotated files
    log_output_events = true    # also each line as a worker_output event in our own log

A bot's key wins over `[supervisor]`'s, key by key.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from typing import Any

from supervisor.config.fields import BadValue, Table, _show, enum_choice, integer

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3}
_SIZE_UNITS |= {"ki": 1024, "mi": 1024**2, "gi": 1024**3}
_MIN_ROTATION_BYTES = 1024


class FileFormat(enum.StrEnum):
    TEXT = "text"  # "2026-11-27T13:36:06.123456Z stdout 1234 the line"
    JSON = "json"  # {"ts", "bot", "worker", "pid", "stream", "line"}


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Where and how a bot's output is kept on disk."""

    enabled: bool = True
    file_format: FileFormat = FileFormat.TEXT
    max_bytes: int = 10 * 1024 * 1024  # 0: one file that is never rotated
    backups: int = 3
    compress: bool = False
    events: bool = True  # each line also a `worker_output` event in the supervisor's log


def take_log_settings(table: Table, defaults: LogSettings) -> LogSettings:
    """The log keys of a table, each falling back to `defaults`."""
    return replace(
        defaults,
        enabled=table.take("log_files", boolean, defaults.enabled),
        file_format=table.take("log_file_format", enum_choice(FileFormat), defaults.file_format),
        max_bytes=table.take("log_max_bytes", rotation_size, defaults.max_bytes),
        backups=table.take("log_backups", integer(minimum=0), defaults.backups),
        compress=table.take("log_compress", boolean, defaults.compress),
        events=table.take("log_output_events", boolean, defaults.events),
    )


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected true or false, got {_show(value)}")
    return value


def rotation_size(value: Any) -> int:
    """0 (never rotate) or at least 1 KiB: smaller files would be one line each."""
    size = byte_size(value)
    if 0 < size < _MIN_ROTATION_BYTES:
        raise BadValue(f"expected 0 (never rotate) or at least 1KiB, got {_show(value)}")
    return size


def byte_size(value: Any) -> int:
    """Bytes as an integer, or a string such as "512KiB", "10MiB", "1GB"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match:
        unit = (match[2] or "").lower().removesuffix("b")
        return int(float(match[1]) * _SIZE_UNITS[unit])
    raise BadValue(
        'expected a size (bytes >= 0, or a string such as "512KiB", "10MiB", "1GB"), '
        f"got {_show(value)}"
    )
