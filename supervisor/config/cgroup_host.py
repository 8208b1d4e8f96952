"""Reading what this host's cgroups offer, for `check`, `run` and the daemon.

The decisions are pure (policy/cgroups.py); this reads the texts they take and
looks at which of our cgroup directories we may write to.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from supervisor.config.model import Config
from supervisor.config.resources import Resources
from supervisor.errors import ConfigError
from supervisor.policy import cgroups
from supervisor.policy.cgroups import Host


def read_host(proc: str = "/proc/self") -> Host:
    """The cgroup layout of this process and what we may do with it."""
    layout = cgroups.detect(_read(f"{proc}/cgroup"), _read(f"{proc}/mountinfo"))
    if layout.unified is not None:
        controllers = _read(os.path.join(layout.unified.directory, "cgroup.controllers"))
        layout = cgroups.detect(_read(f"{proc}/cgroup"), _read(f"{proc}/mountinfo"), controllers)
    writable = frozenset(
        h.directory for h in layout.hierarchies() if os.access(h.directory, os.W_OK | os.X_OK)
    )
    return Host(layout, writable)


def check_resources(cfg: Config, host: Host | None = None) -> list[str]:
    """Raise ConfigError for bots whose required limits this host cannot give; return the
    warnings for those that may run without them. Reads the host only if a bot has limits."""
    bots = [(b.name, b.resources) for b in cfg.bots.values() if b.resources.enabled]
    if not bots:
        return []
    errors, warnings = resource_problems(bots, host or read_host())
    if errors:
        raise ConfigError(errors)
    return warnings


def resource_problems(
    bots: Iterable[tuple[str, Resources]], host: Host
) -> tuple[list[str], list[str]]:
    """(errors, warnings) of bots whose limits this host cannot give.

    An error unless the bot says `resources_required = false`; then a warning.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for name, resources in bots:
        verdict = cgroups.host_verdict(resources, host)
        if not verdict:
            continue
        if resources.required:
            errors.append(
                f"bots.{name}.resources: {verdict} (set resources_required = false "
                "to run without them)"
            )
        else:
            warnings.append(f"bots.{name}.resources: {verdict}; running without them")
    return errors, warnings


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
