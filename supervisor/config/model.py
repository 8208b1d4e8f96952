"""TOML -> frozen, typed config objects.

The file is parsed once, here; nothing downstream reads raw dicts. Every
problem is reported as one line that starts with its key path, e.g.

    bots.echo.workers: expected an integer >= 0, got "two"

and all problems of a file are reported together, so one `supervisor check`
shows everything to fix. Unknown keys are errors with a did-you-mean hint.
"""

from __future__ import annotations

import enum
import os
import re
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from supervisor.config import bounds, rundir, spawnable
from supervisor.config import process as procsettings
from supervisor.config.fields import (
    BadValue,
    Table,
    argv_list,
    choice,
    duration,
    enum_choice,
    env_table,
    existing_directory,
    integer,
    module_spec,
    nul_problems,
    number,
    signal_name,
    string,
)
from supervisor.config.logs import LogSettings, boolean, take_log_settings
from supervisor.config.needs import Need, take_needs
from supervisor.config.probes import Probes, take_probes
from supervisor.config.process import ProcessSettings
from supervisor.config.remote import RemoteSettings, take_remote
from supervisor.config.resources import Resources, take_resources
from supervisor.config.scale import parse_scale
from supervisor.config.schedule import take_schedule
from supervisor.errors import ConfigError
from supervisor.plugins.base import Plugin
from supervisor.policy.scaling import Policy
from supervisor.policy.schedule import Schedule

ENVIRONMENTS = ("dev", "staging", "prod", "high-performance")
DEFAULT_MAX_STARTING = None  # fleet-wide: no cap unless set (see the pacing bench)
_BOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class RestartMode(enum.StrEnum):
    """When a worker that exited on its own is started again."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


class Kind(enum.StrEnum):
    """What a bot's workers are for."""

    SERVICE = "service"  # kept running
    ONESHOT = "oneshot"  # run to completion: exit 0 is success (policy/oneshot.py)


class SpawnMode(enum.StrEnum):
    """How a worker process is started."""

    FORK_SERVER = "fork-server"  # forked from a warm interpreter; module bots only
    EXEC = "exec"  # a fresh process runs argv


# Read by the interpreter at start-up: a worker forked from a running one cannot honour them.
STARTUP_VARIABLES = frozenset(
    {
        "PYTHONHOME",
        "PYTHONSAFEPATH",
        "PYTHONOPTIMIZE",
        "PYTHONDEBUG",
        "PYTHONINSPECT",
        "PYTHONNOUSERSITE",
        "PYTHONUSERBASE",
        "PYTHONHASHSEED",
        "PYTHONIOENCODING",
        "PYTHONUTF8",
        "PYTHONWARNINGS",
        "PYTHONDEVMODE",
        "PYTHONMALLOC",
        "PYTHONFAULTHANDLER",
        "PYTHONTRACEMALLOC",
        "PYTHONPROFILEIMPORTTIME",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONPYCACHEPREFIX",
        "PYTHONPLATLIBDIR",
        "PYTHONINTMAXSTRDIGITS",
        "PYTHONNODEBUGRANGES",
        "PYTHONEXECUTABLE",
        "PYTHONSTARTUP",
        "PYTHONCASEOK",
    }
)


class Readiness(enum.StrEnum):
    """When a worker counts as ready."""

    AUTO = "auto"  # SDK workers on READY, others ready_after_s after start
    SDK = "sdk"  # on READY through the SDK only
    DELAY = "delay"  # ready_after_s after start (or on READY, if earlier)


class LogFormat(enum.StrEnum):
    AUTO = "auto"  # console on a terminal, JSON otherwise
    CONSOLE = "console"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before restarting a worker that keeps failing."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.1  # +/- this fraction of the delay, at random
    reset_after_s: float = 10.0  # up this long, and the next failure counts as the first


@dataclass(frozen=True, slots=True)
class BotConfig:
    """One `[bots.NAME]` table: what to run and how to keep it running."""

    name: str
    argv: tuple[str, ...]  # what exec runs
    module: str  # "pkg.mod[:func]" of a module bot, else ""
    spawn: SpawnMode
    workers: int
    env: Mapping[str, str]
    cwd: Path
    restart: RestartMode
    stop_signal: signal.Signals
    stop_timeout_s: float
    backoff: Backoff
    max_restarts: int
    restart_window_s: float
    readiness: Readiness = Readiness.AUTO
    ready_after_s: float = 1.0  # without the SDK: ready once up this long
    ready_timeout_s: float = 60.0  # with the SDK: killed if not READY by then
    heartbeat_timeout_s: float = 10.0  # with the SDK: killed if silent this long; 0: off
    scale: Policy | None = None  # autoscaling; None: `workers` stays (unless pinned)
    depends_on: tuple[str, ...] = ()  # started once these are ready; stopped before them
    process: ProcessSettings = field(default_factory=ProcessSettings)  # user, umask, rlimits
    max_memory_mb: float = 0.0  # a worker above this RSS is restarted; 0: no limit
    logs: LogSettings = field(default_factory=LogSettings)  # its output on disk (logconf.py)
    fail_bot_at: float = 1.0  # the bot fails once this share of its slots crash-looped
    needs: tuple[Need, ...] = ()  # services checked by the supervisor (config/needs.py)
    on_dependency_restart: str = "ignore"  # "restart": follow a depends_on bot's restart

    port: int = 0  # worker N gets port + N (env PORT, probes' {port}); 0: none
    max_starting: int | None = None  # at most this many workers starting at once; None: no cap
    kind: Kind = Kind.SERVICE
    schedule: Schedule | None = None  # a one-shot's ticks (config/schedule.py)
    probes: Probes = field(default_factory=Probes)  # readiness, liveness, startup (probes.py)
    resources: Resources = field(default_factory=Resources)  # cgroup limits (resources.py)
    preload: bool = False  # fork workers from a zygote that imported the module (zygote.py)

    @property
    def heartbeat_interval_s(self) -> float:
        """How often the SDK beats: four times per timeout, so one lost beat is no alarm."""
        return self.heartbeat_timeout_s / 4 if self.heartbeat_timeout_s > 0 else 5.0


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    """The `[supervisor]` table."""

    run_dir: Path
    log_level: str = "info"
    log_format: LogFormat = LogFormat.AUTO
    shutdown_timeout_s: float = 30.0
    environment: str = ""  # "dev", "staging", "prod", "high-performance"; plugins may inherit it
    logs: LogSettings = field(default_factory=LogSettings)  # defaults of the bots' log_* keys
    remote: RemoteSettings | None = None  # the CURVE control endpoint (config/remote.py)
    max_starting: int | None = None  # fleet-wide cap on workers starting at once (pacing)
    max_workers: int = bounds.DEFAULT_MAX_WORKERS  # the fleet's ceiling (config/bounds.py)


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """One `[plugins.NAME]` table: the plugin's class and its own typed settings."""

    name: str
    cls: type[Plugin]
    settings: Any


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, valid `supervisor.toml`. Bots keep their order in the file."""

    path: Path
    supervisor: SupervisorSettings
    bots: Mapping[str, BotConfig]
    plugins: Mapping[str, PluginConfig] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def uses_fork_server(self) -> bool:
        return any(b.spawn is SpawnMode.FORK_SERVER for b in self.bots.values())


# ---------------------------------------------------------------- entry points


def load(path: Path | str) -> Config:
    """Read and validate the config file; raise ConfigError with every problem."""
    path = Path(path)
    raw = rundir.read_toml(str(path))
    problems: list[str] = nul_problems(raw)
    if problems:
        raise ConfigError(problems)
    # Absolute, not resolved: under a Kubernetes ConfigMap the file is a symlink into a
    # dated directory that the next update deletes; the mount's own path stays.
    config = _parse(raw, path.absolute(), problems)
    if problems or config is None:
        raise ConfigError(problems)
    return config


# ---------------------------------------------------------------- the schema


def _parse(raw: dict[str, Any], path: Path, problems: list[str]) -> Config | None:
    top = Table(raw, "", problems)
    base = path.parent
    sup = top.sub("supervisor")
    settings = SupervisorSettings(
        run_dir=_take_run_dir(sup, base),
        log_level=sup.take("log_level", choice("debug", "info", "warning", "error"), "info"),
        log_format=sup.take("log_format", enum_choice(LogFormat), LogFormat.AUTO),
        shutdown_timeout_s=sup.take("shutdown_timeout_s", duration, 30.0),
        environment=sup.take("environment", choice(*ENVIRONMENTS), ""),
        logs=take_log_settings(sup, LogSettings()),
        remote=take_remote(sup, base),
        max_starting=sup.take("max_starting", integer(minimum=1), DEFAULT_MAX_STARTING),
        max_workers=sup.take("max_workers", integer(minimum=1), bounds.DEFAULT_MAX_WORKERS),
    )
    sup.finish()
    bots_table = top.sub("bots")
    bots: dict[str, BotConfig] = {}
    for name, raw_bot in bots_table.raw.items():
        bots_table.used.add(name)
        bot = _parse_bot(name, Table(raw_bot, f"bots.{name}", problems), base, settings.logs)
        if bot is not None:
            bots[name] = bot
    bots = _in_start_order(bots, problems)
    bounds.check_counts(
        (
            (b.name, "scale.max" if b.scale else "workers", b.scale.max if b.scale else b.workers)
            for b in bots.values()
        ),
        bounds.host_ceiling(settings.max_workers),
        problems,
    )
    _check_user_sockets(settings.run_dir, bots, problems)
    plugins = _parse_plugins(top.sub("plugins"), {"environment": settings.environment})
    top.finish()
    if problems:
        return None
    return Config(
        path=path,
        supervisor=settings,
        bots=MappingProxyType(bots),
        plugins=MappingProxyType(plugins),
    )


def _parse_plugins(table: Table, inherited: dict[str, str]) -> dict[str, PluginConfig]:
    """Each `[plugins.NAME]`: find the plugin, let it read its own table.

    A plugin that lists a `[supervisor]` key in `inherits` sees it in its own
    table unless it sets that key itself.
    """
    if not table.raw:
        return {}  # no [plugins]: the loader (and importlib.metadata) stays unimported
    from supervisor.plugins import loader as plugins  # noqa: PLC0415  (only configs with plugins pay for it)

    found: dict[str, PluginConfig] = {}
    kinds: dict[int, str] = {}
    for name, raw in table.raw.items():
        table.used.add(name)
        sub = Table(raw, f"plugins.{name}", table.problems)
        spec = sub.take("class", string, "")
        try:
            cls = plugins.load(name, spec)
        except LookupError as e:
            table.problems.append(f"plugins.{name}: {e}")
            continue
        for key in cls.inherits:
            if inherited.get(key) and isinstance(sub.raw, dict):
                sub.raw.setdefault(key, inherited[key])
        try:
            settings = cls.configure(sub)
        except Exception as e:  # a third-party plugin's bug is a config error, not a crash
            table.problems.append(f"plugins.{name}: reading its table failed: {e!r}")
            continue
        for kind in cls.message_kinds:
            if kind in kinds:
                table.problems.append(
                    f"plugins.{name}: message kind {kind} is taken by plugin {kinds[kind]}"
                )
            kinds[kind] = name
        found[name] = PluginConfig(name, cls, settings)
    return found


def _take_run_dir(table: Table, base: Path) -> Path:
    table.used.add("run_dir")
    run_dir, problem = rundir.resolve(table.raw.get("run_dir", rundir.DEFAULT), str(base))
    if problem:
        table.problems.append(f"{table.key_path('run_dir')}: {problem}")
    return Path(run_dir)


def _parse_bot(name: str, table: Table, base: Path, logs: LogSettings) -> BotConfig | None:
    start = len(table.problems)
    if not _BOT_NAME.fullmatch(name):
        table.problems.append(
            f"{table.path}: bot names use letters, digits, '_', '.' and '-' "
            "(at most 64, starting with a letter or digit)"
        )
    cwd = table.take("cwd", existing_directory(base), base)
    env: Mapping[str, str] = table.take("env", env_table, MappingProxyType({}))
    env_file = table.take("env_file", string, "")
    if env_file:
        try:
            from_file = procsettings.read_env_file(base / env_file)
        except ValueError as e:
            table.problems.append(f"{table.key_path('env_file')}: {e}")
        else:
            env = MappingProxyType(from_file | dict(env))  # `env` wins over the file
    argv, module = _take_argv(table, cwd, env)
    default_backoff = Backoff()
    backoff = Backoff(
        initial_s=table.take("backoff_initial_s", duration, default_backoff.initial_s),
        factor=table.take("backoff_factor", number(minimum=1.0), default_backoff.factor),
        max_s=table.take("backoff_max_s", duration, default_backoff.max_s),
        jitter=table.take("backoff_jitter", number(0.0, 1.0), default_backoff.jitter),
        reset_after_s=table.take("backoff_reset_s", duration, default_backoff.reset_after_s),
    )
    schedule = take_schedule(table)
    kind = table.take("kind", enum_choice(Kind), Kind.ONESHOT if schedule else Kind.SERVICE)
    oneshot = kind is Kind.ONESHOT
    if schedule and not oneshot:
        table.problems.append(
            f'{table.key_path("kind")}: a bot on a schedule runs to completion: kind = "oneshot"'
        )
    if oneshot and table.has("scale"):
        table.problems.append(f"{table.key_path('scale')}: a one-shot bot does not autoscale")
        table.used.add("scale")
    scale = parse_scale(table.sub("scale")) if table.has("scale") and not oneshot else None
    workers = table.take("workers", integer(minimum=0), scale.min if scale else 1)
    if scale and not scale.min <= workers <= scale.max:
        table.problems.append(
            f"{table.key_path('workers')}: {workers} is outside scale.min..scale.max "
            f"({scale.min}..{scale.max})"
        )
    bot = BotConfig(
        name=name,
        argv=argv,
        module=module,
        spawn=_take_spawn(table, module, env),
        workers=workers,
        env=env,
        cwd=cwd,
        restart=table.take(
            "restart",
            enum_choice(RestartMode),
            RestartMode.ON_FAILURE if oneshot else RestartMode.ALWAYS,
        ),
        stop_signal=table.take("stop_signal", signal_name, signal.SIGTERM),
        stop_timeout_s=table.take("stop_timeout_s", duration, 10.0),
        backoff=backoff,
        max_restarts=table.take("max_restarts", integer(minimum=1), 10),
        restart_window_s=table.take("restart_window_s", duration, 60.0),
        # A one-shot need not say READY: it is judged by its exit (but may use the SDK).
        readiness=table.take(
            "readiness", enum_choice(Readiness), Readiness.DELAY if oneshot else Readiness.AUTO
        ),
        ready_after_s=table.take("ready_after_s", duration, 1.0),
        ready_timeout_s=table.take("ready_timeout_s", duration, 60.0),
        heartbeat_timeout_s=table.take("heartbeat_timeout_s", duration, 10.0),
        scale=scale,
        depends_on=table.take("depends_on", _names, ()),
        process=_take_process(table),
        max_memory_mb=table.take("max_memory_mb", number(minimum=0.0), 0.0),
        logs=take_log_settings(table, logs),
        fail_bot_at=table.take("fail_bot_at", _share, 1.0),
        needs=take_needs(table),
        on_dependency_restart=table.take(
            "on_dependency_restart", choice("ignore", "restart"), "ignore"
        ),
        port=(port := table.take("port", integer(minimum=1), 0)),
        probes=take_probes(table, port),
        resources=take_resources(table, max(workers, scale.max if scale else 0)),
        max_starting=table.take("max_starting", integer(minimum=1), None),
        kind=kind,
        schedule=schedule,
        preload=table.take("preload", boolean, False),
    )
    _check_preload(table, bot)
    table.finish()
    return bot if len(table.problems) == start else None


def _take_argv(table: Table, cwd: Path, env: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    """(argv to exec, module spec or "")."""
    has_command, has_module = table.has("command"), table.has("module")
    command: tuple[str, ...] = table.take("command", argv_list, ())
    module = table.take("module", module_spec, "")
    if has_command and has_module:
        table.problems.append(f'{table.path}: give "command" or "module", not both')
    elif not (has_command or has_module):
        table.problems.append(f'{table.path}: needs "command" (an argv list) or "module"')
    elif module:
        if ":" in module:
            return (sys.executable, "-m", "supervisor.sdk.entry", module), module
        return (sys.executable, "-m", module), module
    elif command and (problem := spawnable.executable_problem(command[0], cwd, env)):
        table.problems.append(f"{table.key_path('command')}: {problem}")
    return command, ""


def _take_spawn(table: Table, module: str, env: Mapping[str, str]) -> SpawnMode:
    """Module bots fork from the fork server unless they need a fresh interpreter."""
    startup = sorted(STARTUP_VARIABLES.intersection(env))
    default = SpawnMode.FORK_SERVER if module and not startup else SpawnMode.EXEC
    spawn = table.take("spawn", enum_choice(SpawnMode), default)
    if spawn is SpawnMode.FORK_SERVER and table.has("command"):
        table.problems.append(
            f'{table.key_path("spawn")}: "fork-server" starts module bots only; '
            "this bot has a command"
        )
    elif spawn is SpawnMode.FORK_SERVER and startup:
        table.problems.append(
            f"{table.key_path('spawn')}: a forked worker cannot apply {startup[0]} "
            '(it is read at interpreter start-up); use spawn = "exec"'
        )
    return spawn


def _check_preload(table: Table, bot: BotConfig) -> None:
    """A zygote imports "pkg.mod" of a "pkg.mod:function" bot forked by the fork server."""
    if not bot.preload:
        return
    where = table.key_path("preload")
    if not bot.module:
        table.problems.append(
            f"{where}: preload imports a module bot's module; this bot has a command"
        )
    elif bot.spawn is not SpawnMode.FORK_SERVER:
        table.problems.append(
            f'{where}: preload forks from the fork server; not with spawn = "exec"'
        )
    elif ":" not in bot.module:
        table.problems.append(
            f'{where}: preload needs module = "package.module:function" (a bare module runs as '
            "__main__, so importing it ahead would run the bot)"
        )
    elif bot.process.uid is not None and not bot.resources.empty:
        table.problems.append(
            f"{where}: a zygote that runs as the bot's user cannot put its workers in their "
            "cgroups; drop preload, user or the resource limits"
        )


# ---------------------------------------------------------------- start order


def _check_user_sockets(run_dir: Path, bots: dict[str, BotConfig], problems: list[str]) -> None:
    """Bots of another user get a socket deeper in run_dir: it must fit in sun_path too."""
    for bot in bots.values():
        uid, gid = bot.process.uid, bot.process.gid
        if uid is not None and uid != os.geteuid():
            path = rundir.user_workers_path(run_dir, uid, os.getegid() if gid is None else gid)
            if problem := rundir.socket_path_problem(path):
                problems.append(f"bots.{bot.name}.user: {problem}; choose a shorter run_dir")


def _share(value: Any) -> float:
    share = number(0.0, 1.0)(value)
    if share == 0.0:
        raise BadValue("expected a share of the slots above 0 and at most 1 (1.0: all), got 0")
    return share


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadValue(f'expected a list of bot names such as ["db", "cache"], got {value!r}')
    return tuple(value)


def _in_start_order(bots: dict[str, BotConfig], problems: list[str]) -> dict[str, BotConfig]:
    """The bots, each after what it depends on (else in file order); cycles are errors."""
    for bot in bots.values():
        for dep in bot.depends_on:
            if dep not in bots:
                problems.append(
                    f'bots.{bot.name}.depends_on: no bot "{dep}"{_suggest_bot(dep, bots)}'
                )
            elif dep == bot.name:
                problems.append(f"bots.{bot.name}.depends_on: a bot cannot depend on itself")
    ordered: dict[str, BotConfig] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered or name not in bots:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            problems.append(f"bots.{cycle[0]}.depends_on: a cycle: {' -> '.join(cycle)}")
            return
        visiting.append(name)
        for dep in bots[name].depends_on:
            if dep != name:
                visit(dep)
        visiting.pop()
        ordered[name] = bots[name]

    for name in bots:
        visit(name)
    return ordered


def _suggest_bot(name: str, bots: Mapping[str, BotConfig]) -> str:
    import difflib  # noqa: PLC0415

    close = difflib.get_close_matches(name, list(bots), n=1)
    return f'; did you mean "{close[0]}"?' if close else ""


# ---------------------------------------------------------------- process settings


def _take_process(table: Table) -> ProcessSettings:
    user = table.take("user", _user, None)
    gid = table.take("group", _group, None)
    umask = table.take("umask", _umask, None)
    rlimits: list[tuple[int, int, int]] = []
    if table.has("rlimits"):
        limits = table.sub("rlimits")
        for name in procsettings.RLIMITS:
            if limits.has(name):
                found = limits.take(name, partial(_rlimit, name), None)
                if found is not None:
                    rlimits.append(found)
        limits.finish(known=sorted(procsettings.RLIMITS))
    uid, groups = None, None
    if user is not None:
        uid, user_gid, name = user
        gid = user_gid if gid is None else gid
        groups = tuple(os.getgrouplist(name, gid))
    other = (uid is not None and uid != os.geteuid()) or (gid is not None and gid != os.getegid())
    if other and os.geteuid() != 0:
        key = "user" if uid is not None else "group"
        table.problems.append(
            f"{table.key_path(key)}: running workers as another user or group needs root "
            f"(the supervisor runs as uid {os.geteuid()})"
        )
    return ProcessSettings(uid, gid, groups, umask, tuple(rlimits))


def _user(value: Any) -> tuple[int, int, str]:
    try:
        return procsettings.user_ids(value)
    except ValueError as e:
        raise BadValue(str(e)) from None


def _group(value: Any) -> int:
    try:
        return procsettings.group_id(value)
    except ValueError as e:
        raise BadValue(str(e)) from None


def _umask(value: Any) -> int:
    try:
        return procsettings.umask_value(value)
    except ValueError as e:
        raise BadValue(str(e)) from None


def _rlimit(name: str, value: Any) -> tuple[int, int, int]:
    try:
        return procsettings.rlimit(name, value)
    except ValueError as e:
        raise BadValue(str(e)) from None
