"""A bot's cgroups: which group each worker joins, OOM exits, the group's end, status.

The fleet calls these hooks: `enter_files` at spawn (the worker writes its pid there before
the bot's code runs), `signal` and `end` when it stops a worker or the bot, `exited` when a
worker exits. A group that cannot be made is an event (`cgroup_failed`) and leaves the bot
`degraded` (its workers run without limits); it never stops a spawn.
"""

from __future__ import annotations

import itertools
import time

import anyio
import structlog

from supervisor.config.resources import Per, Resources
from supervisor.daemon.cgroups import CgroupTree, Group, group_stats, oom_kills
from supervisor.daemon.events import Events
from supervisor.policy import cgroups as mapping
from supervisor.policy.restart import Exit

log = structlog.get_logger("supervisor.resources")

_POLL_S = 0.02
_BOT = -1  # the key of the bot's own group in `groups`


class BotCgroups:
    def __init__(self, tree: CgroupTree | None, bot: str, events: Events) -> None:
        self._tree = tree
        self._bot = bot
        self._events = events
        self.resources = Resources()
        self.plan: mapping.Plan | None = None
        self.degraded = ""  # why the bot runs without its groups ("" if it has them)
        self.groups: dict[int, Group] = {}  # the bot's, and each worker's (per = "worker")
        self._retired: dict[int, list[Group]] = {}  # of workers that exited, until ended
        self._serial = itertools.count()
        self._oom_seen: dict[str, int] = {}  # group name -> OOM kills already reported
        self.oom_kills = 0

    @property
    def active(self) -> bool:
        return self._tree is not None and self.resources.enabled

    def configure(self, resources: Resources) -> None:
        """A bot's (new) limits; they apply to its existing groups too."""
        if resources == self.resources:
            return
        self.resources, self.degraded = resources, ""
        if not self.active or self._tree is None:
            self.plan = None
            return
        self.plan = mapping.plan(resources, self._tree.host)
        if self.plan.in_force:
            log.info("limits_in_force", bot=self._bot, limits=list(self.plan.in_force))
        if self.plan.missing:
            self._events.emit(
                "limits_unavailable", "warning", bot=self._bot, limits=list(self.plan.missing)
            )
        for key, group in self.groups.items():
            if self._limited(key):
                self._write(group)

    def _limited(self, key: int) -> bool:
        """Limits go on each worker's group (per = "worker") or on the bot's."""
        return (key == _BOT) == (self.resources.per is Per.BOT)

    def _write(self, group: Group) -> None:
        try:
            group.write(list(self.plan.writes if self.plan else ()))
        except OSError as e:
            self._fail(f"writing limits to {group.name}: {e}")

    def _group(self, key: int) -> Group | None:
        group = self.groups.get(key)
        if group is not None or self._tree is None:
            return group
        parts = (self._bot,) if key == _BOT else (self._bot, f"w{key}.{next(self._serial)}")
        writes = list(self.plan.writes) if self.plan and self._limited(key) else []
        controllers = mapping.controllers_to_enable(self.resources, self._tree.host.layout)
        try:
            group = self._tree.make(parts, writes, controllers)
        except OSError as e:
            self._fail(f"creating cgroup {'/'.join(parts)}: {e}")
            return None
        self.groups[key] = group
        self._oom_seen[group.name] = oom_kills(group)
        return group

    def _fail(self, reason: str) -> None:
        self.degraded = reason
        self._events.emit("cgroup_failed", "error", bot=self._bot, error=reason)

    def _worker_key(self, slot: int) -> int:
        return slot if self.resources.per is Per.WORKER else _BOT

    # ------------------------------------------------------------ hooks

    def enter_files(self, slot: int) -> list[str]:
        """The cgroup.procs files a new worker of `slot` joins (none: no group for it)."""
        if not self.active:
            return []
        if self.resources.per is Per.WORKER and self._group(_BOT) is None:
            return []
        group = self._group(self._worker_key(slot))
        return group.procs_files if group is not None else []

    def exited(self, slot: int, pid: int, status: Exit) -> bool:
        """A worker exited: was it OOM-killed (SIGKILL and the group's oom_kill count rose)?

        Its own group (per = "worker") is retired: `end` empties and removes it, while a
        restarted worker of the slot gets a new one (a leftover's end must not kill it)."""
        key = self._worker_key(slot)
        group = self.groups.get(key)
        if group is not None and key != _BOT:
            self._retired.setdefault(slot, []).append(self.groups.pop(key))
        if group is None or status.signal != 9:
            return False
        kills = oom_kills(group)
        if kills <= self._oom_seen.get(group.name, 0):
            return False
        self._oom_seen[group.name] = kills
        self.oom_kills += 1
        self._events.emit(
            "worker_oom_killed", "warning", bot=self._bot, worker=slot, pid=pid,
            memory_max=self.resources.memory_max, group=group.name,
        )  # fmt: skip
        return True

    def signal(self, slot: int, sig: int) -> None:
        """The stop signal to every member of a worker's own group: also to what left the
        process group (per = "bot": its process group only, as without cgroups)."""
        group = self.groups.get(slot) if self.resources.per is Per.WORKER else None
        if group is not None:
            group.signal(sig)

    async def end(self, slot: int | None, deadline: float, sig: int = 0) -> None:
        """Wait until the groups are empty or the deadline, then kill them; remove them.
        With sig, what is left is sent it first (what no process group we stopped held).

        A worker's retired groups (per = "worker"), or with slot None all of the bot's.
        """
        if slot is not None:
            groups = self._retired.pop(slot, [])
        else:
            groups = [g for gs in self._retired.values() for g in gs]
            groups += [g for k, g in self.groups.items() if k != _BOT]
            groups += [self.groups[_BOT]] if _BOT in self.groups else []
            self._retired, self.groups = {}, {}
        for group in groups:
            await self._end_group(group, deadline, sig)

    async def _end_group(self, group: Group, deadline: float, sig: int) -> None:
        if sig:
            group.signal(sig)
        # Polled: members need not be our children, and nothing signals an empty v1 group.
        while group.pids() and time.monotonic() < deadline:  # noqa: ASYNC110
            await anyio.sleep(_POLL_S)
        if group.pids():
            log.warning("cgroup_killed", bot=self._bot, group=group.name)
            group.kill()
            with anyio.move_on_after(5.0):
                while group.pids():  # noqa: ASYNC110
                    await anyio.sleep(_POLL_S)
        if not group.remove():
            log.warning("cgroup_not_removed", bot=self._bot, group=group.name)
        self._oom_seen.pop(group.name, None)

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, object] | None:
        """The bot's `resources` in status: limits in force, what the host cannot give, usage."""
        if not self.resources.enabled:
            return None
        bot_group = self.groups.get(_BOT)
        usage = group_stats(bot_group) if bot_group is not None else {}
        return {
            "per": self.resources.per.value,
            "limits": self.resources.limits(),
            "in_force": list(self.plan.in_force) if self.plan else [],
            "unavailable": list(self.plan.missing) if self.plan else ["no cgroups (not set up)"],
            "degraded": self.degraded or None,
            "oom_kills": self.oom_kills,
            "usage": usage,
        }

    def worker_usage(self, slot: int) -> dict[str, float | int] | None:
        group = self.groups.get(slot) if self.resources.per is Per.WORKER else None
        return group_stats(group, light=True) if group is not None else None
