"""Shell completion: `supervisor completion bash|zsh|fish` prints a script; the script calls
`supervisor __complete WORD...` on every Tab, which prints one candidate per line.

The words are those after the program name, the last one the (possibly empty) word being
completed. Commands and flags come from the CLI's own argparse parser, so they cannot drift
from it; bot names and worker slots come from the running supervisor (a `status` request over
the CLI's own ZMTP client: no pyzmq), and bot names from the config file's `[bots]` when none
runs. A candidate line `__files__` asks the shell for file names instead.
"""

from __future__ import annotations

import argparse

FILES = "__files__"
SHELLS = ("bash", "zsh", "fish")
_STATUS_TIMEOUT_S = 1.0  # a Tab must not hang on a supervisor that does not answer
_FILE_DESTS = ("config", "output", "file")

# Imported for annotations only (the completion path is the CLI's start-up path).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def complete(parser: argparse.ArgumentParser, words: list[str], config: str) -> list[str]:
    """The candidates for the last of words (the command line after the program name)."""
    *done, current = words or [""]
    commands = _subcommands(parser)
    state = _Walk(parser, config)
    for word in done:
        state.feed(word, commands)
    return [c for c in state.candidates(current) if c.startswith(current) or c == FILES]


class _Walk:
    """Where the words typed so far leave us: which parser, which positional, which option."""

    def __init__(self, parser: argparse.ArgumentParser, config: str) -> None:
        self.parser = parser
        self.command: str | None = None
        self.config = config
        self.positionals: list[str] = []
        self.pending: argparse.Action | None = None  # an option still waiting for its value
        self.used: set[str] = set()

    def feed(self, word: str, commands: dict[str, argparse.ArgumentParser]) -> None:
        if self.pending is not None:
            if self.pending.dest == "config":
                self.config = word
            self.pending = None
        elif word.startswith("-"):
            action = _options(self.parser).get(word)
            self.used.update(action.option_strings if action else [word])
            if action is not None and action.nargs != 0:
                self.pending = action
        elif self.command is None and word in commands:
            self.command, self.parser = word, commands[word]
        else:
            self.positionals.append(word)

    def candidates(self, current: str) -> list[str]:
        if self.pending is not None:
            return self._values(self.pending)
        if current.startswith("-"):
            return sorted(o for o in _options(self.parser) if o not in self.used)
        if self.command is None:
            return sorted(_subcommands(self.parser))
        wanted = [a for a in self.parser._actions if not a.option_strings]
        index = len(self.positionals)
        return self._values(wanted[index]) if index < len(wanted) else []

    def _values(self, action: argparse.Action) -> list[str]:
        if action.choices is not None:
            return [str(c) for c in action.choices]
        if action.dest in _FILE_DESTS:
            return [FILES]
        if action.dest == "bot":
            return bot_names(self.config)
        if action.dest == "count":
            return ["auto"]
        if action.dest == "worker" and self.positionals:
            return worker_slots(self.config, self.positionals[0])
        return []


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings if a.help != argparse.SUPPRESS}


# ---------------------------------------------------------------- the running supervisor


def _status(config: str) -> dict[str, Any] | None:
    from supervisor.cli import client
    from supervisor.config import rundir
    from supervisor.errors import SupervisorError

    try:
        result = client.request(rundir.load_run_dir(config), "status", {}, _STATUS_TIMEOUT_S)
    except (SupervisorError, OSError):
        return None
    return result if isinstance(result, dict) else None


def bot_names(config: str) -> list[str]:
    """The running supervisor's bots; with none running, the config file's [bots]."""
    status = _status(config)
    if status is not None:
        return sorted(status.get("bots", {}))
    from supervisor.config import rundir
    from supervisor.errors import SupervisorError

    try:
        bots = rundir.read_toml(config).get("bots", {})
    except (SupervisorError, OSError):
        return []
    return sorted(bots) if isinstance(bots, dict) else []


def worker_slots(config: str, bot: str) -> list[str]:
    """The slots of bot's workers in the running supervisor."""
    status = _status(config)
    workers = ((status or {}).get("bots", {}).get(bot) or {}).get("workers", [])
    return [str(w["slot"]) for w in workers if isinstance(w, dict) and "slot" in w]


# ---------------------------------------------------------------- the scripts

_BASH = """\
# bash completion for supervisor: eval "$(supervisor completion bash)"
_supervisor_complete() {
    local IFS=$'\\n' cur="${COMP_WORDS[COMP_CWORD]}" out
    out=$("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null) || return 0
    if [[ "$out" == __files__ ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        COMPREPLY=($out)
    fi
}
complete -F _supervisor_complete supervisor
"""

_ZSH = """\
#compdef supervisor
# zsh completion for supervisor: eval "$(supervisor completion zsh)" after compinit
_supervisor() {
    local -a candidates
    candidates=(${(f)"$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)"})
    if [[ "${candidates[1]}" == __files__ ]]; then
        _files
    else
        compadd -a candidates
    fi
}
compdef _supervisor supervisor
"""

_FISH = """\
# fish completion for supervisor: supervisor completion fish | source
function __supervisor_complete
    set -l words (commandline -opc)
    set -l current (commandline -ct)
    set -l out ($words[1] __complete $words[2..-1] "$current" 2>/dev/null)
    if test "$out[1]" = __files__
        __fish_complete_path (commandline -ct)
    else
        printf '%s\\n' $out
    end
end
complete -c supervisor -f -a '(__supervisor_complete)'
"""


def script(shell: str) -> str:
    """The completion script for shell (one of SHELLS)."""
    return {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]
