"""What a worker process gets besides argv, env and cwd: user, group, umask, limits.

Parsed from `[bots.NAME]` by config.py; applied in the child between fork
and exec (an exec'd worker) or right after fork (a forked one). Also reads
`env_file` (dotenv format). Stdlib only: the fork server imports it.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RLIMITS = {
    "as": resource.RLIMIT_AS,
    "core": resource.RLIMIT_CORE,
    "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE,
    "memlock": resource.RLIMIT_MEMLOCK,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "stack": resource.RLIMIT_STACK,
}
_BYTES = frozenset({"as", "core", "data", "fsize", "memlock", "stack"})


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] | None = None  # supplementary groups (with a user)
    umask: int | None = None
    rlimits: tuple[tuple[int, int, int], ...] = ()  # (resource, soft, hard)

    @property
    def empty(self) -> bool:
        return self == ProcessSettings()

    def popen_kwargs(self) -> dict[str, Any]:
        """For subprocess.Popen (limits go through preexec_fn, only when there are any)."""
        kwargs: dict[str, Any] = {}
        if self.gid is not None:
            kwargs["group"] = self.gid
        if self.groups is not None:
            kwargs["extra_groups"] = list(self.groups)
        if self.uid is not None:
            kwargs["user"] = self.uid
        if self.umask is not None:
            kwargs["umask"] = self.umask
        if self.rlimits:
            limits = self.rlimits
            kwargs["preexec_fn"] = lambda: set_limits(limits)
        return kwargs

    def as_request(self) -> dict[str, Any]:
        """For the fork server (msgpack-able)."""
        return {
            "uid": self.uid,
            "gid": self.gid,
            "groups": None if self.groups is None else list(self.groups),
            "umask": self.umask,
            "rlimits": [list(r) for r in self.rlimits],
        }


def set_limits(limits: tuple[tuple[int, int, int], ...] | list[list[int]]) -> None:
    for res, soft, hard in limits:
        resource.setrlimit(res, (soft, hard))


def apply(request: dict[str, Any]) -> None:
    """In a forked child: limits, then groups, group and user (in that order), then umask."""
    set_limits(request.get("rlimits") or [])
    if request.get("groups") is not None:
        os.setgroups(request["groups"])
    if request.get("gid") is not None:
        os.setgid(request["gid"])
    if request.get("uid") is not None:
        os.setuid(request["uid"])
    if request.get("umask") is not None:
        os.umask(request["umask"])


# ---------------------------------------------------------------- parsing (config.py)


def user_ids(value: Any) -> tuple[int, int, str]:
    """(uid, primary gid, name) of a user name or uid; ValueError with a reason."""
    try:
        entry = pwd.getpwuid(value) if isinstance(value, int) else pwd.getpwnam(str(value))
    except (KeyError, OverflowError):
        raise ValueError(f"no such user {value!r}") from None
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def group_id(value: Any) -> int:
    try:
        entry = grp.getgrgid(value) if isinstance(value, int) else grp.getgrnam(str(value))
    except (KeyError, OverflowError):
        raise ValueError(f"no such group {value!r}") from None
    return entry.gr_gid


def umask_value(value: Any) -> int:
    """An int (0o022 in TOML) or an octal string ("022")."""
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{1,3}", value.strip()):
        return int(value.strip(), 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return value
    raise ValueError(f'expected an octal umask such as "022" or 0o022, got {value!r}')


def rlimit(name: str, value: Any) -> tuple[int, int, int]:
    """(resource, soft, hard) of `name = N` (both limits, as systemd's LimitX=N does),
    `"unlimited"`, `"512MiB"` (byte limits) or `[soft, hard]`."""
    if name not in RLIMITS:
        raise KeyError(name)
    res = RLIMITS[name]
    if isinstance(value, list):
        if len(value) != 2:
            raise ValueError(f"expected [soft, hard], got {value!r}")
        soft, hard = (_limit(name, v) for v in value)
    else:
        soft = hard = _limit(name, value)
    infinite = resource.RLIM_INFINITY
    if hard != infinite and (soft == infinite or soft > hard):
        raise ValueError(f"the soft limit {_show(soft)} is above the hard limit {_show(hard)}")
    current = resource.getrlimit(res)[1]
    if current != infinite and (hard == infinite or hard > current) and os.geteuid() != 0:
        raise ValueError(f"raising the hard limit above {_show(current)} needs root")
    return res, soft, hard


def _limit(name: str, value: Any) -> int:
    if value in ("unlimited", -1):
        return resource.RLIM_INFINITY
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and name in _BYTES:
        from supervisor.config.fields import BadValue  # noqa: PLC0415  (config time only)
        from supervisor.config.logs import byte_size  # noqa: PLC0415  (one size syntax for all)

        try:
            return byte_size(value)
        except BadValue:
            pass
    sizes = ', a size such as "512MiB"' if name in _BYTES else ""
    raise ValueError(f'expected an integer >= 0, "unlimited"{sizes} or [soft, hard], got {value!r}')


def _show(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


# ---------------------------------------------------------------- env files

_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (dotenv): `export` allowed, # comments, single or double quotes.

    ValueError names the file and line of the first mistake.
    """
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _ENV_LINE.match(line)
        if m is None:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw.strip()!r}")
        key, value = m.groups()
        values[key] = _env_value(value, path, number)
        if "\0" in values[key]:  # the same rule as `env`: exec cannot pass it
            raise ValueError(f"{path}:{number}: a value cannot contain a NUL character")
    return values


def _env_value(value: str, path: Path, number: int) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        while quote == '"' and end > 0 and value[end - 1] == "\\":
            end = value.find(quote, end + 1)
        if end < 0:
            raise ValueError(f"{path}:{number}: unterminated {quote} quote")
        inner = value[1:end]
        if quote == '"':
            inner = inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        return inner
    return value.split(" #", 1)[0].strip()
