"""Config validation: good files parse into typed values; each mistake names its key path."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from supervisor.config import model as config
from supervisor.config import rundir
from supervisor.config.model import LogFormat, RestartMode
from supervisor.errors import ConfigError
from supervisor.policy.scaling import Aggregation, RateLimit, Source


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "supervisor.toml"
    path.write_text(text)
    return path


def test_minimal_bot_gets_defaults(tmp_path: Path) -> None:
    """A bot with only a command gets one worker, restart always, SIGTERM/10s, and run_dir
    .supervisor beside the file."""
    cfg = config.load(write(tmp_path, '[bots.a]\ncommand = ["sleep", "5"]\n'))
    bot = cfg.bots["a"]
    assert bot.argv == ("sleep", "5")
    assert bot.workers == 1
    assert bot.restart is RestartMode.ALWAYS
    assert bot.stop_signal is signal.SIGTERM
    assert bot.stop_timeout_s == 10.0
    assert bot.cwd == tmp_path.resolve()
    assert cfg.supervisor.run_dir == tmp_path.resolve() / ".supervisor"
    assert cfg.supervisor.log_format is LogFormat.AUTO


def test_full_bot_parses_every_key(tmp_path: Path) -> None:
    """Every documented key is read into its typed field."""
    (tmp_path / "work").mkdir()
    cfg = config.load(
        write(
            tmp_path,
            """
[supervisor]
run_dir = "rd"
log_level = "debug"
log_format = "json"
shutdown_timeout_s = "1m30s"

[bots.b]
module = "bots.echo:main"
workers = 3
env = { A = "x", PORT = 8080 }
cwd = "work"
restart = "on-failure"
stop_signal = "int"
stop_timeout_s = "500ms"
backoff_initial_s = 0.25
backoff_factor = 3
backoff_max_s = "2m"
backoff_jitter = 0.5
backoff_reset_s = "1h"
max_restarts = 4
restart_window_s = 30
""",
        )
    )
    s, b = cfg.supervisor, cfg.bots["b"]
    assert s.run_dir == tmp_path.resolve() / "rd"
    assert (s.log_level, s.log_format, s.shutdown_timeout_s) == ("debug", LogFormat.JSON, 90.0)
    assert b.argv == (sys.executable, "-m", "supervisor.sdk.entry", "bots.echo:main")
    assert dict(b.env) == {"A": "x", "PORT": "8080"}
    assert b.cwd == tmp_path.resolve() / "work"
    assert b.restart is RestartMode.ON_FAILURE
    assert b.stop_signal is signal.SIGINT
    assert b.stop_timeout_s == 0.5
    assert b.backoff == config.Backoff(0.25, 3.0, 120.0, 0.5, 3600.0)
    assert (b.max_restarts, b.restart_window_s) == (4, 30.0)


def test_module_without_function_runs_as_main(tmp_path: Path) -> None:
    """`module = "pkg.mod"` runs `python -m pkg.mod`."""
    cfg = config.load(write(tmp_path, '[bots.m]\nmodule = "http.server"\n'))
    assert cfg.bots["m"].argv == (sys.executable, "-m", "http.server")


def test_command_string_is_split_like_a_shell(tmp_path: Path) -> None:
    """A command given as one string is split with shell quoting rules, without a shell."""
    cfg = config.load(write(tmp_path, "[bots.s]\ncommand = \"sleep '5'\"\n"))
    assert cfg.bots["s"].argv == ("sleep", "5")


def test_bots_keep_file_order(tmp_path: Path) -> None:
    """Bots start in file order and stop in reverse, so the order must survive parsing."""
    text = "".join(f'[bots.{n}]\ncommand = ["true"]\n' for n in ("zeta", "alpha", "mid"))
    assert list(config.load(write(tmp_path, text)).bots) == ["zeta", "alpha", "mid"]


# Bad configs and the first words of their one-line message; also run for real in
# tests/integration/test_shutdown.py.
BAD_CONFIGS = [
    (
        "[plugins.monitor]\nmax_connections = 0\n",
        "plugins.monitor.max_connections: expected an integer >= 1, got 0",
    ),
    (
        "[plugins.monitor]\nmax_connections = 100000\n",
        "plugins.monitor.max_connections: at most 10000",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nworkers = "two"\n',
        'bots.echo.workers: expected an integer >= 0, got "two"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nworkers = -1\n',
        "bots.echo.workers: expected an integer >= 0, got -1",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nworkers = true\n',
        "bots.echo.workers: expected an integer >= 0, got true",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nworker = 2\n',
        'bots.echo.worker: unknown key; did you mean "workers"?',
    ),
    ('[supervisr]\nrun_dir = "x"\n', 'supervisr: unknown key; did you mean "supervisor"?'),
    (
        '[supervisor]\nshutdown_timeout = "5s"\n',
        'supervisor.shutdown_timeout: unknown key; did you mean "shutdown_timeout_s"?',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nstop_timeout_s = "ten"\n',
        'bots.echo.stop_timeout_s: expected a duration (seconds >= 0, or a string such as "500ms", '
        '"30s", "5m"), got "ten"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nstop_timeout_s = -3\n',
        'bots.echo.stop_timeout_s: expected a duration (seconds >= 0, or a string such as "500ms", '
        '"30s", "5m"), got -3',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nrestart = "sometimes"\n',
        'bots.echo.restart: expected one of "always", "on-failure", "never", got "sometimes"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nstop_signal = "SIGNOPE"\n',
        'bots.echo.stop_signal: expected a signal name such as "SIGTERM" or "INT", got "SIGNOPE"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { PORT = [1] }\n',
        "bots.echo.env.PORT: expected a string or a number, got [1]",
    ),
    ("[bots.echo]\nworkers = 1\n", 'bots.echo: needs "command" (an argv list) or "module"'),
    (
        '[bots.echo]\ncommand = ["true"]\nneeds = ["redis://127.0.0.1", "ftp://x"]\n',
        "bots.echo.needs[1]: unknown scheme 'ftp://' in 'ftp://x' (use redis://, postgresql://",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nneeds = ["tcp://127.0.0.1"]\n',
        "bots.echo.needs[0]: tcp:// needs a port",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nneeds = "redis://127.0.0.1"\n',
        "bots.echo.needs: expected a list of URLs",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\non_dependency_restart = "always"\n',
        "bots.echo.on_dependency_restart: expected one of",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nfail_bot_at = 0\n',
        "bots.echo.fail_bot_at: expected a share of the slots above 0 and at most 1",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nfail_bot_at = 1.5\n',
        "bots.echo.fail_bot_at: expected a number",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nmodule = "a.b"\n',
        'bots.echo: give "command" or "module", not both',
    ),
    (
        "[bots.echo]\ncommand = []\n",
        "bots.echo.command: expected a non-empty list of strings (argv), got []",
    ),
    (
        "[bots.echo]\ncommand = [1, 2]\n",
        "bots.echo.command: expected a non-empty list of strings (argv), got [1, 2]",
    ),
    (
        '[bots.echo]\ncommand = ["no-such-program-xyz"]\n',
        'bots.echo.command: "no-such-program-xyz" is not an executable on PATH',
    ),
    (
        '[bots.echo]\nmodule = "bots/echo.py"\n',
        'bots.echo.module: expected "package.module" or "package.module:function", got "bots/echo.py"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\ncwd = "nowhere"\n',
        "bots.echo.cwd: no such directory",
    ),
    (
        '[bots."bad name"]\ncommand = ["true"]\n',
        "bots.bad name: bot names use letters, digits, '_', '.' and '-' (at most 64, starting with a letter or digit)",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nbackoff_jitter = 2\n',
        "bots.echo.backoff_jitter: expected a number from 0 to 1, got 2",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nmax_restarts = 0\n',
        "bots.echo.max_restarts: expected an integer >= 1, got 0",
    ),
    ("bots = 3\n", "bots: expected a table, got 3"),
    (
        '[supervisor]\nlog_format = "xml"\n',
        'supervisor.log_format: expected one of "auto", "console", "json", got "xml"',
    ),
    (
        '[supervisor]\nrun_dir = "' + "d" * 120 + '"\n',
        "supervisor.run_dir: too long for unix sockets",
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmin = 3\nmax = 2\nmetric = "cpu"\ntarget = 50\n',
        "bots.q.scale.max: 2 is below min (3)",
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 4\n',
        'bots.q.scale: needs "metric" and "target", or "metrics"',
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 4\nmetric = "inflight"\n',
        'bots.q.scale: needs "target" (per worker)',
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 4\nmetric = "redis_list"\ntarget = 10\n',
        'bots.q.scale: a redis_list metric needs "key"',
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 4\nmetric = "inflight"\ntarget = 5\naggregation = "median"\n',
        'bots.q.scale.aggregation: expected one of "sum", "avg", "max", got "median"',
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 4\nmetric = "inflight"\ntarget = 5\nmax_workers = 9\n',
        "bots.q.scale.max_workers: unknown key",
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 4\nmetrics = [{ metric = "cpu", target = 50 }, { metric = "x", target = -1 }]\n',
        "bots.q.scale.metrics[1].target: expected a number > 0, got -1",
    ),
    (
        '[bots.q]\ncommand = ["true"]\nworkers = 9\n[bots.q.scale]\nmax = 4\nmetric = "cpu"\ntarget = 50\n',
        "bots.q.workers: 9 is outside scale.min..scale.max (1..4)",
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 4\nmetric = "cpu"\ntarget = 50\nup_limit = { workers = 0 }\n',
        "bots.q.scale.up_limit.workers: expected an integer >= 1, got 0",
    ),
    # resources (issue 16)
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\ncpu = 0\n',
        'bots.echo.resources.cpu: expected a number of cores > 0 (such as 0.5, "500m" or "50%"), got 0',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\ncpu = "two cores"\n',
        "bots.echo.resources.cpu: expected a number of cores > 0",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\nmemory_max = "12 parsecs"\n',
        "bots.echo.resources.memory_max: expected a size",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\nmemory_high = "1KiB"\n',
        'bots.echo.resources.memory_high: expected at least 1MiB, got "1KiB"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\nmemory_max = "256MiB"\nmemory_high = "512MiB"\n',
        "bots.echo.resources.memory_max: 268435456 bytes is below memory_high (536870912 bytes)",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\npids_max = 0\n',
        "bots.echo.resources.pids_max: expected an integer >= 1, got 0",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\ncpu_weight = 20000\n',
        "bots.echo.resources.cpu_weight: expected an integer from 1 to 10000, got 20000",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\nper = "pod"\n',
        'bots.echo.resources.per: expected one of "bot", "worker", got "pod"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\n[bots.echo.resources]\nmemory = "1GiB"\n',
        "bots.echo.resources.memory: unknown key; did you mean",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nworkers = 1000\n[bots.echo.resources]\nper = "worker"\n',
        'bots.echo.resources.per: "worker" with up to 1000 workers: at most 256 groups per bot; use per = "bot"',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nresources_required = "no"\n',
        'bots.echo.resources_required: expected true or false, got "no"',
    ),
    (
        '[bots.m]\ncommand = ["true"]\nkind = "oneshot"\n[bots.m.scale]\nmax = 4\nmetric = "cpu"\ntarget = 50\n',
        "bots.m.scale: a one-shot bot does not autoscale",
    ),
    (
        '[bots.m]\ncommand = ["true"]\nkind = "cron"\n',
        'bots.m.kind: expected one of "service", "oneshot", got "cron"',
    ),
    (
        '[bots.j]\ncommand = ["true"]\nschedule = "61 * * * *"\n',
        "bots.j.schedule: not a cron expression (minute hour day month weekday): '61 * * * *'",
    ),
    (
        '[bots.j]\ncommand = ["true"]\nschedule = "0 3 * * *"\ntimezone = "Mars/Olympus"\n',
        "bots.j.timezone: unknown time zone 'Mars/Olympus'",
    ),
    (
        '[bots.j]\ncommand = ["true"]\nevery = "500ms"\n',
        "bots.j.every: at least 1s, got 0.5s",
    ),
    (
        '[bots.j]\ncommand = ["true"]\nevery = "5s"\nschedule = "* * * * *"\n',
        'bots.j.every: give "schedule" or "every", not both',
    ),
    (
        '[bots.j]\ncommand = ["true"]\nevery = "5s"\nkind = "service"\n',
        'bots.j.kind: a bot on a schedule runs to completion: kind = "oneshot"',
    ),
    (
        '[bots.j]\ncommand = ["true"]\nevery = "5s"\noverlap = "stack"\n',
        'bots.j.overlap: expected one of "skip", "queue", "replace", got "stack"',
    ),
    (
        '[bots.j]\ncommand = ["true"]\novertime = 3\noverlap = "skip"\n',
        'bots.j.overlap: only with "schedule" or "every"',
    ),
    (
        "[supervisor]\nmax_starting = 0\n",
        "supervisor.max_starting: expected an integer >= 1, got 0",
    ),
    (
        '[bots.q]\ncommand = ["true"]\nmax_starting = 0\n',
        "bots.q.max_starting: expected an integer >= 1, got 0",
    ),
    # A worker count past the ceiling is an error, not a fork bomb (config/bounds.py).
    (
        '[bots.echo]\ncommand = ["true"]\nworkers = 20000\n',
        "bots.echo.workers: 20000 workers is more than ",
    ),
    (
        '[supervisor]\nmax_workers = 4\n[bots.echo]\ncommand = ["true"]\nworkers = 5\n',
        "bots.echo.workers: 5 workers is more than 4, the limit set by supervisor.max_workers",
    ),
    (
        '[supervisor]\nmax_workers = 5\n[bots.a]\ncommand = ["true"]\nworkers = 3\n'
        '[bots.b]\ncommand = ["true"]\nworkers = 3\n',
        "supervisor.max_workers: the bots ask for up to 6 workers together, more than 5",
    ),
    (
        '[bots.q]\ncommand = ["true"]\n[bots.q.scale]\nmax = 1000000\nmetric = "cpu"\ntarget = 50\n',
        "bots.q.scale.max: 1000000 workers is more than ",
    ),
    (
        '[supervisor]\nmax_workers = 0\n[bots.echo]\ncommand = ["true"]\n',
        "supervisor.max_workers: expected an integer >= 1, got 0",
    ),
    # Environment values: strings and finite numbers, nothing else (fields.env_table).
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { DEBUG = true }\n',
        "bots.echo.env.DEBUG: expected a string or a number, got true",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { WHEN = 1979-05-27 }\n',
        "bots.echo.env.WHEN: expected a string or a number, got 1979-05-27",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { DB = { host = "x" } }\n',
        "bots.echo.env.DB: expected a string or a number, got a table",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { RATE = inf }\n',
        "bots.echo.env.RATE: expected a string or a finite number, got inf",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { RATE = nan }\n',
        "bots.echo.env.RATE: expected a string or a finite number, got nan",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { A = "x\\u0000y" }\n',
        "bots.echo.env.A: a NUL character is not allowed",
    ),
    # Found by the fuzz properties: these crashed load() with "embedded null byte".
    ('[supervisor]\nrun_dir = "\\u0000"\n', "supervisor.run_dir: a NUL character is not allowed"),
    (
        '[bots.a]\ncommand = ["true"]\ncwd = "x\\u0000"\n',
        "bots.a.cwd: a NUL character is not allowed",
    ),
    (
        '[bots.a]\ncommand = ["true", "\\u0000"]\n',
        "bots.a.command[1]: a NUL character is not allowed",
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { "A=B" = "1" }\n',
        "bots.echo.env.A=B: not a valid environment variable name",
    ),
    # A value with a newline still makes one line of message.
    (
        '[bots.echo]\ncommand = ["true"]\nworkers = "1\\n2"\n',
        'bots.echo.workers: expected an integer >= 0, got "1\\n2"',
    ),
    # The program is looked up as the spawn will: relative to cwd, executable.
    (
        '[bots.echo]\ncommand = ["./no-such-script.sh"]\n',
        'bots.echo.command: "./no-such-script.sh" is not an executable file',
    ),
    (
        '[bots.echo]\ncommand = ["true"]\nenv = { PATH = "/nonexistent" }\n',
        'bots.echo.command: "true" is not an executable on PATH',
    ),
    # preload: a zygote imports the module of a "module:function" bot it forks.
    (
        '[bots.echo]\ncommand = ["true"]\npreload = true\n',
        "bots.echo.preload: preload imports a module bot's module; this bot has a command",
    ),
    (
        '[bots.echo]\nmodule = "json:loads"\nspawn = "exec"\npreload = true\n',
        'bots.echo.preload: preload forks from the fork server; not with spawn = "exec"',
    ),
    (
        '[bots.echo]\nmodule = "json"\npreload = true\n',
        'bots.echo.preload: preload needs module = "package.module:function"',
    ),
    (
        '[bots.echo]\nmodule = "json:loads"\npreload = "yes"\n',
        "bots.echo.preload: expected true or false",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_bad_value_names_its_key_path(tmp_path: Path, text: str, message: str) -> None:
    """Each mistake is reported as one line that starts with its key path."""
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """One check shows all mistakes in a file, not only the first."""
    text = (
        '[bots.a]\ncommand = ["true"]\nworkers = "x"\n[bots.b]\nworkerz = 1\ncommand = ["true"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    assert caught.value.problems == [
        'bots.a.workers: expected an integer >= 0, got "x"',
        'bots.b.workerz: unknown key; did you mean "workers"?',
    ]


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    """A syntax error points at file:line:column."""
    path = write(tmp_path, '[bots.a]\ncommand = ["true"]\nworkers 3\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert caught.value.problems == [
        f"{path}:3:9: invalid TOML: Expected '=' after a key in a key/value pair"
    ]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file is reported with its path, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read config: No such file or directory"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (2.5, 2.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        (".5s", 0.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    """Durations are seconds or strings with ms, s, m, h units."""
    assert config.duration(value) == seconds


def test_load_run_dir_ignores_mistakes_elsewhere(tmp_path: Path) -> None:
    """CLI clients only need run_dir, so a typo in a bot must not stop `status`."""
    path = write(tmp_path, '[supervisor]\nrun_dir = "rd"\n[bots.a]\nworkerz = 1\n')
    assert rundir.load_run_dir(str(path)) == str(tmp_path.resolve() / "rd")


def test_scale_table_becomes_a_policy(tmp_path: Path) -> None:
    """[bots.NAME.scale] is read into the autoscaling policy, with HPA-like defaults."""
    text = """
[bots.q]
command = ["true"]
[bots.q.scale]
min = 2
max = 8
metrics = [
  { metric = "queue_depth", aggregation = "max", target = 100 },
  { metric = "redis_list", key = "jobs", target = 20 },
  { metric = "cpu", target = 70 },
]
scale_down_window_s = "1m"
up_limit = { workers = 2, period_s = "10s" }
"""
    policy = config.load(write(tmp_path, text)).bots["q"].scale
    assert policy is not None
    assert (policy.min, policy.max, policy.tolerance, policy.scale_down_window_s) == (
        2,
        8,
        0.1,
        60.0,
    )
    assert [(m.source, m.name, m.aggregation, m.target) for m in policy.metrics] == [
        (Source.WORKER, "queue_depth", Aggregation.MAX, 100.0),
        (Source.REDIS_LIST, "jobs", Aggregation.AVG, 20.0),
        (Source.CPU, "cpu", Aggregation.AVG, 70.0),
    ]
    assert policy.metrics[1].url == "redis://127.0.0.1:6379/0"
    assert policy.up_limit == RateLimit(workers=2, percent=None, period_s=10.0)
    assert policy.down_limit == RateLimit(percent=100, period_s=15.0)
    assert (policy.cpu_startup_s, policy.initial_readiness_delay_s) == (2.0, 0.0)  # no 30 s
    assert config.load(write(tmp_path, text)).bots["q"].workers == 2  # starts at min


def test_a_config_reached_through_a_symlink_keeps_the_links_path(tmp_path: Path) -> None:
    """As under a Kubernetes ConfigMap: the file is a symlink into a dated directory that
    the next update replaces. Paths come from the link's directory, so a reload reads the
    new file and bots do not run in a directory about to be deleted."""
    dated = tmp_path / "..2026_11_27"
    dated.mkdir()
    (dated / "supervisor.toml").write_text('[bots.a]\ncommand = ["sleep", "5"]\n')
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "supervisor.toml").symlink_to(dated / "supervisor.toml")
    cfg = config.load(mount / "supervisor.toml")
    assert cfg.path == mount / "supervisor.toml"
    assert cfg.bots["a"].cwd == mount
    assert cfg.supervisor.run_dir == mount / ".supervisor"
    assert rundir.load_run_dir(str(mount / "supervisor.toml")) == str(mount / ".supervisor")


@pytest.mark.skipif(os.geteuid() != 0, reason="user = ... needs root")
def test_a_run_dir_too_long_for_another_users_socket_is_named(tmp_path: Path) -> None:
    """Fine for our own sockets, too long for run_dir/workers.d/UID-GID/workers: said at load."""
    run_dir = "/tmp/" + "d" * 80  # 93 bytes with /workers; 115 with nobody's socket
    text = f'[supervisor]\nrun_dir = "{run_dir}"\n[bots.u]\ncommand = ["true"]\nuser = "nobody"\n'
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    assert caught.value.problems == [
        f"bots.u.user: {run_dir}/workers.d/65534-65534/workers is too long for a unix socket "
        "(115 bytes, at most 107); choose a shorter run_dir"
    ]


def test_needs_parse_with_default_ports(tmp_path: Path) -> None:
    """needs: each URL keeps its text and gets its scheme's default port; postgres:// folds."""
    cfg = config.load(
        write(
            tmp_path,
            '[bots.b]\ncommand = ["true"]\nfail_bot_at = 0.5\non_dependency_restart = "restart"\n'
            'needs = ["redis://127.0.0.1", "postgres://postgres@127.0.0.1/test",'
            ' "tcp://db:5000", "https://example.com/healthz"]\n',
        )
    )
    bot = cfg.bots["b"]
    assert [(n.scheme, n.host, n.port) for n in bot.needs] == [
        ("redis", "127.0.0.1", 6379),
        ("postgresql", "127.0.0.1", 5432),
        ("tcp", "db", 5000),
        ("https", "example.com", 443),
    ]
    assert bot.needs[1].url == "postgres://postgres@127.0.0.1/test"
    assert bot.fail_bot_at == 0.5
    assert bot.on_dependency_restart == "restart"


def test_probes_parse_with_kubernetes_defaults(tmp_path: Path) -> None:
    """Each probe kind reads its check and thresholds; {port} and {slot} expand per worker."""
    cfg = config.load(
        write(
            tmp_path,
            '[bots.a]\ncommand = ["sleep", "5"]\nport = 8000\n'
            '[bots.a.probes.liveness]\nhttp = "http://127.0.0.1:{port}/healthz"\n'
            "interval_s = 2\nfailure_threshold = 5\n"
            '[bots.a.probes.readiness]\ntcp = "127.0.0.1:{port}"\nsuccess_threshold = 2\n'
            '[bots.a.probes.startup]\nexec = ["test", "-e", "up-{slot}"]\n',
        )
    )
    probes = cfg.bots["a"].probes
    assert cfg.bots["a"].port == 8000
    assert probes.liveness is not None
    assert probes.liveness.thresholds.interval_s == 2.0
    assert probes.liveness.thresholds.failure_threshold == 5
    assert probes.liveness.thresholds.timeout_s == 1.0
    assert probes.liveness.expand(3, 8000) == ("http://127.0.0.1:8003/healthz",)
    assert probes.readiness is not None
    assert probes.readiness.thresholds.success_threshold == 2
    assert probes.startup is not None
    assert probes.startup.expand(1, 0) == ("test", "-e", "up-1")


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ('http = "http://h:1/"\ntcp = "h:1"', 'bots.a.probes.liveness: give exactly one of "exec"'),
        ('tcp = "h:1"\nfailure_threshold = -1', "bots.a.probes.liveness.failure_threshold: "),
        ('tcp = "h:{port}"', "bots.a.probes.liveness.tcp: {port} needs a port source"),
        ('tcp = "h:1"\nperiod = 3', "bots.a.probes.liveness.period: unknown key"),
        ('tcp = "h:1"\nsuccess_threshold = 2', "liveness.success_threshold: must be 1"),
        ('http = "ftp://h/"', "bots.a.probes.liveness.http: expected an URL"),
    ],
)
def test_bad_probe_names_its_key(tmp_path: Path, probe: str, message: str) -> None:
    """Each probe mistake is one line that starts with its key path."""
    text = f'[bots.a]\ncommand = ["sleep", "5"]\n[bots.a.probes.liveness]\n{probe}\n'
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, text))
    assert [p for p in caught.value.problems if message in p], caught.value.problems
    assert len(caught.value.problems) == 1, caught.value.problems


def test_a_bot_name_is_matched_whole(tmp_path: Path) -> None:
    """A name with a trailing newline is refused (a regex `$` would let it through)."""
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, '[bots."web\\n"]\ncommand = ["true"]\n'))
    assert caught.value.problems[0].endswith("(at most 64, starting with a letter or digit)")
