"""The error hierarchy and the CLI's named exit codes."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes of the `supervisor` command; scripts rely on them."""

    OK = 0
    ERROR = 1  # the command failed (unknown bot, bad count, ...)
    CONFIG = 2  # bad config or bad usage; nothing was started or changed
    NOT_ALL_RUNNING = 3  # `status`: some bot is not running as desired
    UNREACHABLE = 4  # no supervisor answers on the control socket


class SupervisorError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = ExitCode.ERROR


class ConfigError(SupervisorError):
    """The config is invalid; each problem is one line that names its key path."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ProtocolError(SupervisorError):
    """A frame on a socket does not decode or does not fit the schema."""


class CommandError(SupervisorError):
    """A control command was refused (unknown bot, invalid count, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnreachableError(SupervisorError):
    """No supervisor answers on the control socket."""

    exit_code = ExitCode.UNREACHABLE


class AlreadyRunningError(SupervisorError):
    """Another supervisor already owns this run_dir."""
