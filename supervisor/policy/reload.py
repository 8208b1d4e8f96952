"""What a reload changes: the difference of two configs, as a plan (pure).

removed    bots no longer in the file: stopped (in reverse start order)
added      new bots: started (after what they depend on)
restarted  bots whose process changed (command, env, cwd, user, ...): a rolling
           restart, one worker at a time, each new one ready before the next stops
updated    bots where only live settings changed (workers, scale, restart policy,
           backoff, depends_on, max_memory_mb, stop_timeout_s): applied in place,
           a new worker count as scaling; no process is touched
unchanged  everything else: not touched, pids stay
plugins    plugins added, removed or reconfigured: started, stopped, restarted
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from supervisor.config.model import BotConfig, Config

# BotConfig fields a running bot takes without restarting a worker.
LIVE_FIELDS = (
    "workers",
    "scale",
    "restart",
    "backoff",
    "max_restarts",
    "restart_window_s",
    "fail_bot_at",
    "needs",
    "on_dependency_restart",
    "stop_timeout_s",
    "depends_on",
    "max_memory_mb",
    "logs",  # the log_* keys: the writer takes them at once (log_files: from the next spawn)
    "max_starting",  # the pacing queue reads it at each ask
    "schedule",  # a one-shot's runner is renewed; the job does not run because of it
)
# [supervisor] keys that only a restart of the supervisor applies.
_RESTART_ONLY = ("run_dir", "log_level", "log_format", "remote")  # remote: its keys too


@dataclass(frozen=True, slots=True)
class Plan:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    plugins_started: tuple[str, ...] = ()
    plugins_stopped: tuple[str, ...] = ()
    plugins_restarted: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()  # `[supervisor]` keys that changed but wait for a restart

    def as_dict(self) -> dict[str, list[str]]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


def plan(old: Config, new: Config) -> Plan:
    added = tuple(n for n in new.bots if n not in old.bots)
    removed = tuple(n for n in reversed(list(old.bots)) if n not in new.bots)  # stop order
    restarted, updated, unchanged = [], [], []
    for name, spec in new.bots.items():
        before = old.bots.get(name)
        if before is None:
            continue
        if before == spec:
            unchanged.append(name)
        elif process_part(before) == process_part(spec):
            updated.append(name)
        else:
            restarted.append(name)
    p_old, p_new = old.plugins, new.plugins
    return Plan(
        added=added,
        removed=removed,
        restarted=tuple(restarted),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        plugins_started=tuple(n for n in p_new if n not in p_old),
        plugins_stopped=tuple(n for n in p_old if n not in p_new),
        plugins_restarted=tuple(n for n in p_new if n in p_old and p_old[n] != p_new[n]),
        needs_restart=tuple(
            f"supervisor.{key}"
            for key in _RESTART_ONLY
            if getattr(old.supervisor, key) != getattr(new.supervisor, key)
        ),
    )


def process_part(spec: BotConfig) -> BotConfig:
    """The spec with its live settings blanked: what the worker processes are made of."""
    blank: dict[str, Any] = dict.fromkeys(LIVE_FIELDS)
    return dataclasses.replace(spec, **blank)
