"""The `supervisor` command: argument parsing and printing, no supervision logic.

Client commands import only what they need (no pyzmq, anyio, structlog or
psutil), so `supervisor status` starts fast. Exit codes are `ExitCode`.
"""

from __future__ import annotations

import argparse
import sys

from supervisor import __version__
from supervisor.errors import CommandError, ExitCode, SupervisorError

# Imported for annotations only: this module is on the CLI's start-up path, where
# typing and pathlib would cost several milliseconds of every call.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONFIG = "supervisor.toml"
IMPORT_FORMATS = ("supervisord", "circus", "pm2", "procfile")  # importers.FORMATS, unimported
COMPLETION_SHELLS = ("bash", "zsh", "fish")  # completion.SHELLS, unimported
_QUICK_TIMEOUT_S = 10.0
_HOSTS_TIMEOUT_S = 5.0  # `status --hosts`: a host slower than this is reported unreachable
_WAIT_TIMEOUT_S = 3600.0  # stop/restart/shutdown: the supervisor bounds these itself
_FOLLOW_INTERVAL_S = 0.1  # `logs -f` looks for new lines this often


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__complete"]:  # a shell's Tab (see `supervisor completion`)
        return _complete(argv[1:])
    args = _parser().parse_args(argv)
    if getattr(args, "host", None) and args.command not in (remote := _remote_commands()):
        # Acting on this host when another was named would be the worst answer.
        _error(
            f"--host: `{args.command}` works on this host only (over --host: "
            f"{', '.join(sorted(remote))})"
        )
        return int(ExitCode.CONFIG)
    try:
        return int(args.func(args))
    except SupervisorError as e:
        _error(str(e))
        return int(e.exit_code)
    except KeyboardInterrupt:
        return 130


def _remote_commands() -> frozenset[str]:
    """The commands that go through _request: the protocol's (but ping, no CLI command), and
    top's remote frame. The rest read this host's files or sockets."""
    from supervisor.wire import protocol

    return (protocol.COMMANDS - {"ping"}) | {"top"}


def _error(message: str) -> None:
    for line in message.splitlines() or [message]:
        print(f"supervisor: {line}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c", "--config", default=argparse.SUPPRESS, metavar="FILE",
        help=f"config file (default: ./{DEFAULT_CONFIG})",
    )  # fmt: skip
    common.add_argument(
        "--host", default=argparse.SUPPRESS, metavar="NAME",
        help="a remote supervisor from the hosts file (over CURVE; see `keys new`)",
    )  # fmt: skip
    parser = argparse.ArgumentParser(
        prog="supervisor", parents=[common], description="A process supervisor for bot fleets."
    )
    parser.add_argument("--version", action="version", version=f"supervisor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=help)

    command("run", "run the fleet in the foreground").set_defaults(func=_run)
    command("check", "validate the config; start nothing").set_defaults(func=_check)
    p = command("status", "show bots and workers (exit 3 if any bot is not running as desired)")
    p.add_argument("bot", nargs="?")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    p.add_argument(
        "--hosts", metavar="A,B,C", help="these hosts at once, one table (exit 3 if any is down)"
    )
    p.add_argument("--all", action="store_true", help="every host in the hosts file")
    p.set_defaults(func=_status)
    p = command("scale", "pin a bot at N workers, or hand it back with 'auto'")
    p.add_argument("bot")
    p.add_argument("count", metavar="N|auto")
    p.set_defaults(func=_scale)
    for name, verb in (("start", "start"), ("stop", "stop"), ("restart", "restart")):
        p = command(name, f"{verb} a bot, or one of its workers")
        p.add_argument("bot")
        p.add_argument("--worker", type=int, metavar="SLOT")
        if name == "restart":
            p.add_argument(
                "--rolling", action="store_true", help="one worker at a time, each new one ready"
            )
        p.set_defaults(func=_lifecycle, verb=name)
    p = command("reload", "re-read the config and apply what changed (also: SIGHUP)")
    p.set_defaults(func=_reload)
    command("shutdown", "stop every bot, then the supervisor").set_defaults(func=_shutdown)
    p = command("top", "a live view of the fleet, refreshed every second")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS")
    _add_hosts_options(p)
    p.set_defaults(func=_top)
    p = command("logs", "print a bot's output from its log files, workers merged by time")
    p.add_argument("bot")
    p.add_argument("--worker", type=int, metavar="SLOT", help="only this worker slot")
    p.add_argument("-n", "--lines", type=int, default=10, metavar="N", help="last N (default 10)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(func=_logs)
    _add_import_and_completion(sub)
    _add_keys(sub)
    from supervisor.cli import analyze

    analyze.add_parser(sub, common)
    sub.choices["analyze"].set_defaults(func=_analyze)
    p = command("events", "print fleet events as they happen")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_events)
    return parser


def _add_hosts_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hosts", metavar="A,B,C", help="these hosts at once (exit 3 if one is down)")
    p.add_argument("--all", action="store_true", help="every host in the hosts file")


def _add_import_and_completion(sub: Any) -> None:  # neither reads a config: no -c
    about = "turn a supervisord, Circus, PM2 or Procfile config into ours"
    p = sub.add_parser("import", help=about, description=about)
    p.add_argument("file", metavar="FILE", help="the other supervisor's config file")
    p.add_argument("--from", dest="fmt", choices=IMPORT_FORMATS, help="default: detected")
    p.add_argument("-o", "--output", default=DEFAULT_CONFIG, metavar="OUT", help="'-' for stdout")
    p.add_argument("--strict", action="store_true", help="exit 2 if any option has no equivalent")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=_import)
    about = 'print a shell completion script: eval "$(supervisor completion bash)"'
    p = sub.add_parser("completion", help=about, description=about)
    p.add_argument("shell", choices=COMPLETION_SHELLS)
    p.set_defaults(func=_completion)


def _add_keys(sub: Any) -> None:
    p = sub.add_parser("keys", help="CURVE key pairs for the remote endpoint")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = keys.add_parser("new", help="write NAME.key (public) and NAME.key_secret (0600)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dir", default=".", metavar="DIR", help="where to write them (default: .)")
    p.set_defaults(func=_keys_new)


def _config_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "config", DEFAULT_CONFIG))


def _request(args: argparse.Namespace, cmd: str, timeout_s: float, **kw: Any) -> Any:
    request_args = {k: v for k, v in kw.items() if v is not None}
    if getattr(args, "host", None):
        from supervisor.cli import hosts, remote

        (host,) = hosts.pick(_hosts_file(), [args.host])
        return remote.request(host, cmd, request_args, timeout_s)
    from supervisor.cli import client
    from supervisor.config import rundir

    run_dir = rundir.load_run_dir(_config_path(args))
    return client.request(run_dir, cmd, request_args, timeout_s)


def _hosts_file() -> dict[str, Any]:
    import os

    from supervisor.cli import hosts

    return dict(hosts.load_hosts(hosts.hosts_path(os.environ)))


# ---------------------------------------------------------------- commands


def _analyze(args: argparse.Namespace) -> int:
    from supervisor.cli import analyze

    return analyze.run(args, _config_path(args))


def _run(args: argparse.Namespace) -> int:
    from supervisor.daemon.main import run  # the one arrow from the CLI into the daemon

    return run(_config_path(args))


def _check(args: argparse.Namespace) -> int:
    from supervisor.config import cgroup_host, spawnable
    from supervisor.config import model as config
    from supervisor.errors import ConfigError

    cfg = config.load(_config_path(args))
    for warning in cgroup_host.check_resources(cfg):
        _error(f"warning: {warning}")
    # Not in load(): finding a module walks the disk, which the daemon's reload does not need.
    missing = [
        f"bots.{bot.name}.module: {problem}"
        for bot in cfg.bots.values()
        if bot.module and (problem := spawnable.module_problem(bot.module, bot.cwd, bot.env))
    ]
    if missing:
        raise ConfigError(missing)
    print(f"{_config_path(args)}: valid; run_dir {cfg.supervisor.run_dir}")
    for bot in cfg.bots.values():
        print(
            f"  {bot.name:<16} workers={bot.workers} restart={bot.restart} "
            f"stop={bot.stop_signal.name}/{bot.stop_timeout_s:g}s  {' '.join(bot.argv)}"
        )
        if bot.resources.enabled:
            limits = " ".join(f"{k}={v:g}" for k, v in bot.resources.limits().items())
            print(f"    resources per {bot.resources.per}: {limits or 'no limits'}")
    for plugin in cfg.plugins.values():
        lines = plugin.cls.describe(plugin.settings)
        print(f"  plugin {plugin.name}" + (f": {lines[0]}" if lines else ""))
        for line in lines[1:]:
            print(f"    {line}")
    return ExitCode.OK


def _completion(args: argparse.Namespace) -> int:
    from supervisor.cli import completion

    sys.stdout.write(completion.script(args.shell))
    return ExitCode.OK


def _complete(words: list[str]) -> int:
    from supervisor.cli import completion

    for candidate in completion.complete(_parser(), words, DEFAULT_CONFIG):
        print(candidate)
    return ExitCode.OK


def _import(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from supervisor.cli import importers

    out = args.output
    if out != "-" and os.path.exists(out) and not args.force:
        raise importers.SourceError(f"{out} exists; pass --force to overwrite it")
    fmt, text, dropped = importers.convert(Path(args.file), args.fmt, os.environ)
    for item in dropped:
        print(f"supervisor: not converted: {item}", file=sys.stderr)
    if args.strict and dropped:
        _error(f"--strict: {len(dropped)} options have no equivalent; nothing written")
        return ExitCode.CONFIG
    if out == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(out).write_text(text)
        except OSError as e:
            raise importers.SourceError(f"{out}: cannot write it: {e.strerror or e}") from None
        print(f"{out}: written from {args.file} ({fmt}); check it: supervisor check -c {out}")
    return ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    if args.hosts or args.all:
        return _status_hosts(args)
    result = _request(args, "status", _QUICK_TIMEOUT_S, bot=args.bot)
    if args.json:
        import json

        print(json.dumps(result, indent=2))
    else:
        print(format_status(result))
    if result.get("trimmed"):  # a fleet too big for one reply (daemon/status_fit.py)
        print(f"supervisor: note: {result['trimmed']}", file=sys.stderr)
    healthy = all(b["state"] == "running" for b in result["bots"].values())
    return ExitCode.OK if healthy else ExitCode.NOT_ALL_RUNNING


def _status_hosts(args: argparse.Namespace) -> int:
    from supervisor.cli import hosts, remote
    from supervisor.config.fields import BadValue

    listed = _hosts_file()
    try:
        names = list(listed) if args.all else hosts.split_names(args.hosts)
    except BadValue as e:
        raise CommandError("bad_request", f"--hosts: {e}") from None
    merged = hosts.merge_status(remote.status_many(hosts.pick(listed, names), _HOSTS_TIMEOUT_S))
    if args.json:
        import json

        print(json.dumps(merged, indent=2))
    else:
        print(hosts.format_hosts(merged))
    return ExitCode.OK if hosts.all_running(merged) else ExitCode.NOT_ALL_RUNNING


def _keys_new(args: argparse.Namespace) -> int:
    from pathlib import Path

    from supervisor.wire import curve

    if not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise CommandError("bad_request", f"NAME is letters, digits, - _ . ; got {args.name!r}")
    try:
        public, secret = curve.new_key_pair(Path(args.dir), args.name)
    except OSError as e:
        raise CommandError("keys", str(e)) from None
    key, _ = curve.read_key_file(public)
    print(f"{public}: public key {key.decode()}")
    print(f"{secret}: secret key (mode 0600; keep it on this machine)")
    return ExitCode.OK


def _scale(args: argparse.Namespace) -> int:
    count: int | str = args.count
    if count != "auto":
        try:
            count = int(args.count)
        except ValueError:
            raise CommandError(
                "bad_count", f"N must be a whole number or auto, got {count!r}"
            ) from None
    r = _request(args, "scale", _QUICK_TIMEOUT_S, bot=args.bot, count=count)
    print(f"{r['bot']}: {r['previous']} -> {r['desired']} workers ({r['mode']})")
    if r.get("warning"):
        print(f"supervisor: warning: {r['warning']}", file=sys.stderr)
    return ExitCode.OK


def _lifecycle(args: argparse.Namespace) -> int:
    timeout = _QUICK_TIMEOUT_S if args.verb == "start" else _WAIT_TIMEOUT_S
    extra = {"rolling": True} if getattr(args, "rolling", False) else {}
    r = _request(args, args.verb, timeout, bot=args.bot, worker=args.worker, **extra)
    who = r["bot"] if args.worker is None else f"{r['bot']} worker {args.worker}"
    print(f"{who}: {args.verb} done; bot is {r['state']}")
    return ExitCode.OK


def _reload(args: argparse.Namespace) -> int:
    r = _request(args, "reload", _WAIT_TIMEOUT_S)  # removed bots are stopped first
    labels = {
        "added": "started",
        "removed": "stopped",
        "restarted": "rolling restart",
        "updated": "updated in place",
        "unchanged": "untouched",
        "plugins_started": "plugins started",
        "plugins_stopped": "plugins stopped",
        "plugins_restarted": "plugins restarted",
    }
    for key, label in labels.items():
        if r.get(key):
            print(f"{label}: {', '.join(r[key])}")
    if r.get("needs_restart"):
        keys = ", ".join(r["needs_restart"])
        print(f"supervisor: warning: {keys} changed; that applies after a restart", file=sys.stderr)
    return ExitCode.OK


def _shutdown(args: argparse.Namespace) -> int:
    r = _request(args, "shutdown", _WAIT_TIMEOUT_S)
    print(f"supervisor stopped ({len(r['stopped'])} bots)")
    return ExitCode.OK


def _top(args: argparse.Namespace) -> int:
    import time

    frame = _top_frame(args)
    out = sys.stdout
    out.write("\x1b[?25l")  # hide the cursor while we redraw
    try:
        while True:
            out.write("\x1b[H\x1b[2J" + frame() + "\n")
            out.flush()
            time.sleep(args.interval)
    finally:
        out.write("\x1b[?25h")
        out.flush()


def _top_frame(args: argparse.Namespace) -> Any:
    """What `top` draws each time: this host, one remote host, or a table of many."""
    if args.hosts or args.all:
        import time

        from supervisor.cli import hosts, remote

        listed = _hosts_file()
        names = list(listed) if args.all else hosts.split_names(args.hosts)
        chosen = hosts.pick(listed, names)

        def many() -> str:
            merged = hosts.merge_status(remote.status_many(chosen, _HOSTS_TIMEOUT_S))
            return f"{len(chosen)} hosts  {time.strftime('%H:%M:%S')}\n\n" + hosts.format_hosts(
                merged
            )

        return many
    if getattr(args, "host", None):
        return lambda: format_top(_request(args, "status", _QUICK_TIMEOUT_S))
    from supervisor.cli import client
    from supervisor.config import rundir

    run_dir = rundir.load_run_dir(_config_path(args))  # once: the local path as it was
    return lambda: format_top(client.request(run_dir, "status", timeout_s=_QUICK_TIMEOUT_S))


def format_top(status: dict[str, Any]) -> str:
    """`supervisor top`: a header with fleet totals, then the status table."""
    import time

    s, bots = status["supervisor"], status["bots"].values()
    workers = [w for b in bots for w in b["workers"] if w["pid"] is not None]
    cpu = sum(w["cpu_percent"] for w in workers)
    rss = sum(w["rss_bytes"] for w in workers)
    header = (
        f"supervisor {s['version']}  pid {s['pid']}  up {duration(s['uptime_s'])}  "
        f"{time.strftime('%H:%M:%S')}\n"
        f"bots {len(status['bots'])}  workers {len(workers)}  "
        f"ready {sum(b['ready'] for b in bots)}/{sum(b['desired'] for b in bots)}  "
        f"restarts {sum(b['restarts'] for b in bots)}  cpu {cpu:.1f}%  rss {size(rss)}\n"
    )
    return header + "\n" + format_status(status)


def _logs(args: argparse.Namespace) -> int:
    import os

    from supervisor.cli import logread
    from supervisor.config import rundir

    path = _config_path(args)
    directory = os.path.join(rundir.load_run_dir(path), "logs", args.bot)
    if not os.path.isdir(directory):
        bots = rundir.read_toml(path).get("bots", {})
        if args.bot not in bots:
            known = ", ".join(bots) or "none"
            raise CommandError("unknown_bot", f"no bot named {args.bot!r} (bots: {known})")
        if not args.follow:
            raise CommandError(
                "no_logs", f"no log files in {directory} (log_files off, or it has not run yet)"
            )
    if args.lines < 0:
        raise CommandError("bad_count", f"-n must be 0 or more, got {args.lines}")
    logs = logread.BotLogs(directory, args.worker)
    try:
        for line in logs.last(args.lines):
            print(logread.format_line(args.bot, line))
        if args.follow:
            logread.follow(logs, args.bot, _FOLLOW_INTERVAL_S, sys.stdout)
    except BrokenPipeError:  # `supervisor logs BOT | head`: quiet, also when Python exits
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return ExitCode.OK


def _events(args: argparse.Namespace) -> int:
    import json

    import msgpack

    from supervisor.cli import client
    from supervisor.config import rundir
    from supervisor.wire import transport

    run_dir = rundir.load_run_dir(_config_path(args))
    client.request(run_dir, "ping")  # a clear error if none is running
    sock = transport.subscribe(f"{run_dir}/events", timeout_s=2.0)
    while True:
        try:
            _topic, payload = sock.recv_multipart()
        except transport.Timeout:
            client.request(run_dir, "ping")  # still there? (raises if it is gone)
            continue
        event = msgpack.unpackb(payload)
        if args.json:
            print(json.dumps(event), flush=True)
        else:
            print(format_event(event), flush=True)


# ---------------------------------------------------------------- printing


def format_event(event: dict[str, Any]) -> str:
    import datetime

    ts = datetime.datetime.fromtimestamp(event.pop("ts", 0.0), datetime.UTC)
    name = event.pop("event", "?")
    fields = " ".join(f"{k}={v}" for k, v in event.items() if v not in (None, ""))
    return f"{ts:%H:%M:%S.%f}"[:-3] + f"  {name:<20} {fields}"


def format_status(result: dict[str, Any]) -> str:
    """The human table: a row per bot, then a row per worker; notes below their bot."""
    header = ["BOT / WORKER", "STATE", "READY", "MODE / PID", "RESTARTS", "UPTIME", "CPU", "RSS"]
    rows: list[list[str]] = [[*header, "METRICS"]]
    notes: dict[int, list[str]] = {}  # row index -> full-width lines after it
    for name, b in result["bots"].items():
        rows.append([
            name, b["state"], f"{b['ready']}/{b['desired']}", b["mode"], str(b["restarts"]),
            duration(b["uptime_s"]), "", "", "",
        ])  # fmt: skip
        bot_notes = notes.setdefault(len(rows) - 1, [])
        if b.get("failure"):
            bot_notes.append(f"failed: {b['failure']}")
        if b.get("waiting_reason"):
            bot_notes.append(f"waiting: {b['waiting_reason']}")
        elif b.get("waiting_for"):
            bot_notes.append(f"waiting for {', '.join(b['waiting_for'])} to be ready")
        if b.get("job"):
            bot_notes.append(_job_line(b["job"]))
        if b.get("scale"):
            bot_notes.append(_scale_line(b["scale"]))
        if b.get("resources"):
            bot_notes.append(_resources_line(b["resources"]))
        for w in b["workers"]:
            alive = w["pid"] is not None
            rows.append([
                f"  {name}:{w['slot']}", w["state"], "yes" if w["ready"] else "no",
                str(w["pid"]) if alive else "-", str(w["restarts"]),
                duration(w["uptime_s"]) if alive else "-",
                f"{w['cpu_percent']:.1f}%" if alive else "-",
                size(w["rss_bytes"]) if alive else "-",
                _metrics(w.get("metrics", {})),
            ])  # fmt: skip
            if w.get("failure"):
                notes.setdefault(len(rows) - 1, []).append(f"failed: {w['failure']}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for index, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        lines += [f"    {note}" for note in notes.get(index, [])]
    for name, p in result.get("plugins", {}).items():
        detail = p.get("error") or p.get("reason") or p.get("summary") or ""
        lines.append(f"plugin {name}: {p.get('state', '?')}" + (f" ({detail})" if detail else ""))
    return "\n".join(lines)


def _job_line(job: dict[str, Any]) -> str:
    """One line on a one-shot: its outcome, the last run (when, how it ended, how long), and
    for a scheduled one the schedule and the next run."""
    parts = [f"one-shot {job['outcome']}"]
    if job.get("last_run"):
        if job.get("signal"):
            ended = f"signal {job['signal']}"
        elif job.get("exit_code") is not None:
            ended = f"exit {job['exit_code']}"
        else:
            ended = "running"
        took, d = "", job.get("duration_s")
        if d is not None:
            took = f" after {d:.1f}s" if d < 60 else f" after {duration(d)}"
        parts.append(f"last run {_clock(job['last_run'])}: {ended}{took}")
    if job.get("schedule"):
        parts.append(f"schedule {job['schedule']}")
        if job.get("next_run"):
            parts.append(f"next {_clock(job['next_run'])}")
        if job.get("skipped"):
            parts.append(f"{job['skipped']} tick(s) skipped")
    return ", ".join(parts)


def _clock(iso: str) -> str:
    """An ISO time from status, as this host's local date and time to the second."""
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _scale_line(scale: dict[str, Any]) -> str:
    """One line on an autoscaled bot: its range, metrics against targets, the last decision."""
    parts = [f"autoscaled {scale['min']}..{scale['max']}"]
    for m in scale["metrics"]:
        value = "-" if m["value"] is None else f"{m['value']:g}"
        parts.append(f"{m['metric']} {value} (target {m['target']:g})")
    last = scale.get("last_decision")
    if last:
        parts.append(f"last: {last['reason'].rsplit('; ', 1)[-1]} {duration(last['age_s'])} ago")
    return ", ".join(parts)


def _resources_line(res: dict[str, Any]) -> str:
    """One line on a bot's cgroups: limits in force, what the host cannot give, usage."""
    parts = [f"cgroup per {res['per']}: " + (", ".join(res["in_force"]) or "no limits")]
    if res.get("unavailable"):
        parts.append("unavailable: " + ", ".join(res["unavailable"]))
    if res.get("degraded"):
        parts.append(f"degraded: {res['degraded']}")
    usage = res.get("usage") or {}
    if "memory_bytes" in usage:
        parts.append(f"memory {size(usage['memory_bytes'])}")
    if "pids" in usage:
        parts.append(f"pids {usage['pids']}")
    if res.get("oom_kills"):
        parts.append(f"OOM kills {res['oom_kills']}")
    return "; ".join(parts)


def _metrics(metrics: dict[str, float], width: int = 48) -> str:
    text = " ".join(f"{k}={v:g}" for k, v in sorted(metrics.items()))
    return text if len(text) <= width else text[: width - 3] + "..."


def duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{n}B"
