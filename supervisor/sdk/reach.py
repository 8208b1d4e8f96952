"""Can this process reach the supervisor's worker socket? Said once, on stderr, if not.

libzmq reconnects to an ipc endpoint it cannot open in silence, forever; a
bot that runs as a user who may not enter the socket's directory would be
left guessing. So before connecting, the SDK looks at the path itself.
"""

from __future__ import annotations

import errno
import os
import sys

_IPC = "ipc://"


def problem(address: str) -> OSError | None:
    """Why a connect to this ipc address would fail now (None: it may work)."""
    if not address.startswith(_IPC):
        return None
    path = address[len(_IPC) :]
    try:
        os.stat(path)
    except OSError as e:
        return e
    if not os.access(path, os.W_OK):  # connecting to a unix socket needs write access
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    return None


def warn_unreachable(address: str) -> bool:
    """Print one line naming the endpoint and the errno if it cannot be reached; True if so."""
    error = problem(address)
    if error is None:
        return False
    code = errno.errorcode.get(error.errno or 0, str(error.errno))
    print(
        f"supervisor.worker: cannot connect to {address}: {code} ({error.strerror}); "
        "is the socket's directory open to this worker's user?",
        file=sys.stderr,
        flush=True,
    )
    return True
