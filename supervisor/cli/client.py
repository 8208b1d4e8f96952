"""Talking to a running supervisor from the CLI (or a script, or a test).

Kept free of pyzmq, anyio and structlog so that a `supervisor status` call
starts fast; see zmtp.py.
"""

from __future__ import annotations

import itertools
import os

from supervisor.cli.zmtp import DealerConnection
from supervisor.config.rundir import control_path
from supervisor.errors import CommandError, UnreachableError
from supervisor.wire import protocol

# Imported for annotations only: this module is on the CLI's start-up path, where
# typing and pathlib would cost several milliseconds of every call.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

_ids = itertools.count(int.from_bytes(os.urandom(3), "big"))


def request(
    run_dir: str | Path, cmd: str, args: dict[str, Any] | None = None, timeout_s: float = 5.0
) -> Any:
    """Send one command and return its result; CommandError if it was refused."""
    path = control_path(run_dir)
    try:
        conn = DealerConnection(path, timeout_s, protocol.MAX_REPLY_FRAME_BYTES)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        raise UnreachableError(
            f"no supervisor is running (nothing listens on {path}); start one with `supervisor run`"
        ) from None
    except TimeoutError:
        raise UnreachableError(
            f"the supervisor at {path} did not answer within {timeout_s:g}s"
        ) from None
    except (ConnectionResetError, BrokenPipeError):  # e.g. it is out of file descriptors
        raise UnreachableError(
            f"the supervisor at {path} closed the connection before answering"
        ) from None
    try:
        request_id = next(_ids)
        conn.send(protocol.encode_request(protocol.Request(request_id, cmd, args or {})))
        reply = _await_reply(conn, request_id, path, timeout_s)
    finally:
        conn.close()
    if not reply.ok:
        raise CommandError(reply.error_code, reply.error_message)
    return reply.result


def _await_reply(
    conn: DealerConnection, request_id: int, path: str, timeout_s: float
) -> protocol.Reply:
    while True:
        try:
            frames = conn.recv()
        except TimeoutError:
            raise UnreachableError(
                f"the supervisor at {path} did not answer within {timeout_s:g}s"
            ) from None
        except ConnectionResetError:
            raise UnreachableError(f"the supervisor at {path} closed the connection") from None
        reply = protocol.decode_reply(frames[-1])
        # id 0: refused before its id was read (bad_request, rate_limited, ...); this
        # connection carries one request, so the refusal is ours.
        if reply.id == request_id or (reply.id == 0 and not reply.ok):
            return reply
