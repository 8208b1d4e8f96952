"""The package map (supervisor/README.md) holds: no import cycle, and only the allowed arrows.

The graph is read with ast from every module under supervisor/, counting imports under
TYPE_CHECKING and inside functions; `from supervisor.x import y` is an arrow to `supervisor.x`, and to
`supervisor.x.y` too when that is a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "supervisor"

# Room -> the rooms it may import (besides itself). "top" is supervisor/__init__ (the version)
# and the shared leaves errors.py and procfs.py; "public" are the stable re-export paths (worker, cache, dbpool, fields).
ALLOWED = {
    "top": set(),
    "public": {"top", "sdk", "wire", "config"},
    "wire": {"top"},
    "sdk": {"top", "wire"},
    "cli": {"top", "wire", "config", "history"},
    "config": {"top", "wire", "policy", "plugins.api"},
    "policy": {"top", "config"},
    "daemon": {"top", "wire", "config", "policy", "plugins.api"},
    "history": {"top", "config", "policy"},  # the store on disk: the monitor writes, analyze reads
    "plugins.api": {"top", "config"},
    "plugin": {"top", "wire", "config", "plugins.api", "history"},  # a built-in plugin's own folder
}
# The one door from the CLI into the daemon: `supervisor run`.
# The entry point (`python -m supervisor`) calls the CLI; the fork server's children become bots,
# so it preloads the bot entry.
EXCEPTIONS = {
    ("supervisor.cli.main", "supervisor.daemon.main"),
    ("supervisor.__main__", "supervisor.cli.main"),
    ("supervisor.daemon.helpers.forkserver", "supervisor.sdk.entry"),
    ("supervisor.daemon.helpers.forkserver", "supervisor.sdk"),
}
# What a pure policy module may not import.
IMPURE = {"os", "psutil", "zmq", "anyio", "time", "asyncio", "socket", "subprocess", "signal"}
PUBLIC = {"worker", "cache", "dbpool", "fields"}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours that `name` imports, and every outside top-level name."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # `from pkg import sub` runs pkg/__init__ first: an arrow to both (as the hook counts).
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for raw in targets:
            target = raw
            while target.startswith("supervisor.") and target not in known:
                target = target.rpartition(".")[0]
            if target != name:
                out.add(target)
    return out


def room(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "procfs", "__main__"):
        return "top"
    if len(parts) == 2 and parts[1] in PUBLIC:
        return "public"
    if parts[1] == "plugins":
        return "plugins.api" if len(parts) == 2 or parts[2] in ("base", "loader") else "plugin"
    return parts[1]


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(g):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle() -> None:
    """No two modules of supervisor/ import each other, directly or around a loop."""
    assert cycles(graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The finder itself reports a loop (so the test above can fail)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_allowed_arrows() -> None:
    """Each room imports only the rooms the package map allows, plus the named exceptions."""
    bad = []
    for name, targets in graph().items():
        for target in targets:
            if not target.startswith("supervisor") or (name, target) in EXCEPTIONS:
                continue
            mine, theirs = room(name), room(target)
            same_plugin = mine == theirs == "plugin" and name.split(".")[2] == target.split(".")[2]
            if (mine != theirs and theirs not in ALLOWED[mine]) or (
                mine == theirs == "plugin" and not same_plugin
            ):
                bad.append(f"{name} -> {target}")
    assert bad == []


def test_room_rules_catch_a_forbidden_arrow() -> None:
    """The rules refuse the arrows the map forbids (sdk -> daemon, daemon -> cli, ...)."""
    forbidden = [
        ("supervisor.sdk.worker", "supervisor.daemon.fleet"),
        ("supervisor.sdk.cache", "supervisor.plugins.cache_warmer.plugin"),
        ("supervisor.wire.protocol", "supervisor.config.fields"),
        ("supervisor.daemon.owner", "supervisor.cli.client"),
        ("supervisor.daemon.owner", "supervisor.plugins.monitor.plugin"),
        ("supervisor.policy.restart", "supervisor.daemon.process"),
    ]
    for a, b in forbidden:
        assert room(b) not in ALLOWED[room(a)], (a, b)


def test_policy_does_no_io() -> None:
    """The pure decisions import no clock, os, psutil, zmq or anyio."""
    bad = {
        (name, target)
        for name, targets in graph().items()
        if room(name) == "policy"
        for target in targets
        if target.split(".")[0] in IMPURE
    }
    assert bad == set()


@pytest.mark.parametrize(
    "statement",
    [
        "from supervisor.worker import Worker",
        "from supervisor.worker import Worker; Worker.connect_sync()",
    ],
)
def test_a_bot_loads_no_daemon_cli_or_plugin_module(statement: str) -> None:
    """A bot's `import` of the SDK, in a fresh interpreter, loads nothing of the other rooms."""
    probe = (
        f"import sys; {statement}; "
        "print('\\n'.join(m for m in sys.modules if m.startswith('supervisor')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "supervisor.sdk.worker" in loaded
    assert [m for m in loaded if room(m) in ("daemon", "cli", "plugins.api", "plugin")] == []


def test_public_paths_still_import() -> None:
    """The paths bots and plugins were told to use keep working."""
    probe = (
        "from supervisor.worker import Worker, AsyncWorker, Settings; "
        "from supervisor.cache import AsyncCache, SyncCache; "
        "from supervisor.dbpool import PoolClient; "
        "from supervisor.plugins.base import Host, Metric, Plugin; "
        "from supervisor.fields import Table, duration, string"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
