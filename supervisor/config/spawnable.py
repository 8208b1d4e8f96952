"""Can a bot's worker be started at all? Found before the first spawn, by `supervisor check`.

Both checks look where the spawn will look, without running anything of the bot's:

- A `command`'s program: a name with a "/" is taken relative to the bot's `cwd`; a bare name
  is searched in the PATH the worker gets (the bot's `env` over the supervisor's, as
  `subprocess` does with `os.get_exec_path`), with relative PATH entries taken from the bot's
  `cwd`, since the worker execs after its chdir. It must be a file we may execute.
- A `module` bot's module: found on the worker's `sys.path` (its `cwd`, then `PYTHONPATH`,
  then the interpreter's own paths) without importing it. `importlib.util.find_spec("a.b.c")`
  would import (run) `a` and `a.b` to read their `__path__`; instead each step asks
  `PathFinder` for one name inside the directories its parent's *spec* lists, so no package's
  `__init__` runs. The cost of not running code: a package that rewrites its `__path__` when
  imported (pkgutil.extend_path tricks) is searched as it lies on disk. Only the top-level
  name may also come from `sys.meta_path` (built-in, frozen, editable-install finders), whose
  `find_spec` for a top-level name runs no module code. The `:function` part is not checked:
  that would need the import.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path


def executable_problem(program: str, cwd: Path, env: Mapping[str, str]) -> str:
    """Why `program` cannot be executed by a worker in cwd with env, or "" if it can."""
    if "/" in program:
        candidate = cwd / program
        return "" if _executable(candidate) else f'"{program}" is not an executable file'
    for entry in os.get_exec_path(dict(os.environ) | dict(env)):
        if _executable(cwd / entry / program):  # an absolute entry stays as it is
            return ""
    return f'"{program}" is not an executable on PATH'


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def module_problem(spec: str, cwd: Path, env: Mapping[str, str]) -> str:
    """Why the module of "pkg.mod[:func]" cannot be found by a worker, or "" if it can."""
    name = spec.partition(":")[0]
    merged = dict(os.environ) | dict(env)
    extra = [str(cwd / p) for p in merged.get("PYTHONPATH", "").split(os.pathsep) if p]
    search: list[str] | None = [str(cwd), *extra, *_interpreter_paths()]
    parts = name.split(".")
    for i in range(len(parts)):
        full = ".".join(parts[: i + 1])
        if search is None:
            return f'"{".".join(parts[:i])}" is a module, not a package: no "{full}" in it'
        found = importlib.machinery.PathFinder.find_spec(full, search)
        if found is None and i == 0:
            found = _top_level_elsewhere(full)
        if found is None:
            where = f'in package "{".".join(parts[:i])}"' if i else f"from cwd {cwd}"
            return f'no module "{full}" can be found {where} (nothing imported)'
        search = found.submodule_search_locations and list(found.submodule_search_locations)
    return ""


def _interpreter_paths() -> list[str]:
    """The running interpreter's sys.path without its script directory (the worker's own
    first entry is its cwd instead)."""
    return [p for p in (sys.path if sys.flags.safe_path else sys.path[1:]) if p]


def _top_level_elsewhere(name: str) -> importlib.machinery.ModuleSpec | None:
    """Built-in, frozen or meta-path (e.g. editable install) top-level modules; no code runs.

    PathFinder is skipped here: it would search this process's sys.path, not the worker's."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if finder is importlib.machinery.PathFinder or find is None:
            continue
        try:
            found = find(name, None)
        except (ImportError, ValueError):
            continue
        if found is not None:
            return found  # type: ignore[no-any-return]
    return None
