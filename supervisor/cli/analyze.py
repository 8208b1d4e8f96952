"""`supervisor analyze [BOT] [--since 1h] [--json] [--save NAME | --compare NAME]`.

Reads the history store under the config's run_dir directly: a running supervisor is not
needed. Exit 0 when nothing is worse than a warning, 1 when a finding is critical; an unknown
bot, a bad --since, a missing baseline or an empty store: one line and exit 1.
"""

from __future__ import annotations

import argparse
import sys

from supervisor.errors import ExitCode


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    about = "find the fleet's bottlenecks in its history, and say what to change"
    p = sub.add_parser("analyze", parents=[common], help=about, description=about)
    p.add_argument("bot", nargs="?", help="only this bot (and the supervisor and host)")
    p.add_argument("--since", default="1h", metavar="DURATION", help="window: 15m, 1h, 7d")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--save", metavar="NAME", help="store the window's key figures as NAME")
    group.add_argument("--compare", metavar="NAME", help="baseline NAME beside the window")


def run(args: argparse.Namespace, config_path: str) -> int:
    from supervisor.config import model
    from supervisor.history import analysis

    since_s = analysis.parse_since(args.since)
    config = model.load(config_path)
    conn = analysis.open_checked(config, args.bot)
    if args.save:
        data = analysis.save(conn, config, args.save, args.bot, since_s)
        if args.json:
            print(analysis.dumps({"saved": args.save, "figures": data}))
        else:
            count = sum(len(v) for v in data.values())
            print(f"baseline {args.save!r} saved: {count} figures over the last {args.since}")
        return ExitCode.OK
    if args.compare:
        saved, changes = analysis.compare(conn, config, args.compare, args.bot, since_s)
        if args.json:
            print(analysis.dumps({"baseline": saved["name"], "saved_at": saved["saved_at"],
                                  "changes": [c.as_dict() for c in changes]}))  # fmt: skip
        else:
            print(analysis.format_compare(saved, since_s, changes))
        return ExitCode.OK
    history, found = analysis.findings(conn, config, args.bot, since_s)
    if not history.series:
        print(f"supervisor: no samples in the last {args.since}", file=sys.stderr)
        return ExitCode.ERROR
    if args.json:
        print(analysis.dumps(analysis.as_json(history, found)))
    else:
        print(analysis.format_findings(history, found))
    return analysis.exit_code(found)
