"""Every timer runs on the monotonic clock: a wall-clock jump (NTP, a VM resumed, an operator's
`date -s`) moves no deadline. The wall clock is read only to stamp what people read."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "supervisor"

# (module, function) -> why it may read the wall clock. Each is a timestamp, never a deadline.
WALL_CLOCK_STAMPS = {
    ("daemon/logfiles.py", "write"): "the time printed on each log line",
    ("daemon/events.py", "emit"): "the ts field of a published event",
    ("plugins/db_tuning/plugin.py", "_record"): "when a pool change was made, for status",
    ("plugins/monitor/plugin.py", "on_event"): "when a scaling decision was seen, for the page",
    ("daemon/jobs.py", "started"): "a one-shot's last run, shown in status",
    # The one timer on the wall clock, on purpose: a cron tick is a time of day. It sleeps at
    # most a few seconds at a time and reads the clock again, so a jump moves the next tick
    # to the right wall time instead of leaving a stale monotonic deadline.
    ("daemon/schedules.py", "run"): "cron ticks are wall-clock times",
    ("plugins/monitor/plugin.py", "record"): "a history sample's time (it outlives the process)",
    ("plugins/monitor/plugin.py", "_report"): "an alert's time in the history",
    ("plugins/monitor/history_api.py", "respond"): "the window the page asked for ends now",
    ("plugins/monitor/history_api.py", "_history"): "the window the page asked for ends now",
}
# Every row of the on-disk history is stamped with the wall clock, which is what people ask
# about ("last night") and what survives a restart; these modules read it for nothing else.
WALL_CLOCK_MODULES = {
    "history/analysis.py": "windows of the history end now",
    "history/store.py": "rows, baselines and set-aside files are stamped",
}
WALL_CLOCK = {
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "localtime"),
    ("time", "gmtime"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
}


def _wall_clock_reads(tree: ast.AST) -> list[tuple[str, int]]:
    """(enclosing function, line) of each call that reads the wall clock."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Call):
                func = child.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    pair = (func.value.id, func.attr)
                    # gmtime/localtime with an argument only format a time given to them
                    if pair in WALL_CLOCK and not (
                        pair[1] in ("gmtime", "localtime") and child.args
                    ):
                        found.append((function, child.lineno))
            if isinstance(child, ast.ImportFrom) and child.module in ("time", "datetime"):
                names = {a.name for a in child.names}
                # (datetime's class may be imported: datetime.now() is still caught above)
                assert not names & {"time", "time_ns"}, (
                    f"line {child.lineno}: import the module, so the clock each call reads shows"
                )
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_only_timestamps_read_the_wall_clock() -> None:
    seen: dict[tuple[str, str], int] = {}
    unexpected = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in WALL_CLOCK_MODULES:
            continue
        for function, line in _wall_clock_reads(ast.parse(path.read_text(), str(path))):
            key = (module, function)
            if key in WALL_CLOCK_STAMPS:
                seen[key] = line
            else:
                unexpected.append(f"supervisor/{module}:{line} in {function}()")
    assert not unexpected, (
        "these read the wall clock; timers and deadlines must use time.monotonic() or "
        "anyio.current_time() (add a timestamp to WALL_CLOCK_STAMPS with its reason): "
        + ", ".join(unexpected)
    )
    assert set(seen) == set(WALL_CLOCK_STAMPS), "a listed timestamp is gone: drop it from the list"


def test_the_checker_finds_a_deadline_on_the_wall_clock() -> None:
    """The check itself can fail: a deadline on time.time() is found."""
    tree = ast.parse("import time\ndef wait():\n    deadline = time.time() + 5\n")
    assert _wall_clock_reads(tree) == [("wait", 3)]
    assert _wall_clock_reads(ast.parse("import time\ntime.gmtime(12)\n")) == []
