"""Who may do what over the remote endpoint (and the dashboard): a pure table.

    read     status, events, analyze (and ping)
    operate  read's, plus scale, start, stop, restart
    admin    operate's, plus reload, shutdown

A command not in the table needs `admin`: a command added later is closed
to remote clients until someone puts it here on purpose.
"""

from __future__ import annotations

ROLES = ("read", "operate", "admin")  # each includes the ones before it

COMMAND_ROLE = {
    "ping": "read",
    "status": "read",
    "events": "read",
    "analyze": "read",
    "scale": "operate",
    "start": "operate",
    "stop": "operate",
    "restart": "operate",
    "reload": "admin",
    "shutdown": "admin",
}


def role_needed(cmd: str) -> str:
    """The least role that may run `cmd`."""
    return COMMAND_ROLE.get(cmd, "admin")


def allows(role: str, cmd: str) -> bool:
    """May a client with `role` run `cmd`? An unknown role may run nothing."""
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(role_needed(cmd))


def refusal(role: str, cmd: str) -> str | None:
    """None if allowed; else the operator's message naming the role needed."""
    if allows(role, cmd):
        return None
    return f"{cmd!r} needs the {role_needed(cmd)} role; this client has {role!r}"
