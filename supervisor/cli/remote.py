"""Commands to other hosts' supervisors over CURVE (`--host`, `--hosts`, `--all`).

Only imported for those: it brings pyzmq (through wire/curve.py), which the
local path never loads. Each host is asked in a thread of its own with a
deadline, so one host that is down or drops our packets never holds the others.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from supervisor.cli.hosts import Host
from supervisor.errors import CommandError, UnreachableError
from supervisor.wire import curve, protocol

_ids = itertools.count(int.from_bytes(os.urandom(3), "big"))


def request(host: Host, cmd: str, args: dict[str, Any], timeout_s: float) -> Any:
    """One command to one host; CommandError if refused, UnreachableError if no answer."""
    request_id = next(_ids)
    frame = protocol.encode_request(protocol.Request(request_id, cmd, args))
    try:
        raw = curve.request(
            host.endpoint, host.server_key, host.key_file, frame, timeout_s,
            protocol.MAX_REPLY_FRAME_BYTES,
        )  # fmt: skip
    except curve.RefusedError:
        raise UnreachableError(
            f"host {host.name} ({host.endpoint}) refused this client's key: it is not listed "
            "in that supervisor's [supervisor.clients]"
        ) from None
    except curve.NotListeningError:
        raise UnreachableError(
            f"host {host.name} ({host.endpoint}) refused the connection (no supervisor "
            "listens there, or no route to it)"
        ) from None
    except curve.NoReplyError:
        raise UnreachableError(
            f"host {host.name} ({host.endpoint}) did not answer within {timeout_s:g}s "
            "(down, unreachable, or a wrong server_key)"
        ) from None
    except OSError as e:
        raise UnreachableError(f"host {host.name}: {host.key_file}: {e.strerror or e}") from None
    reply = protocol.decode_reply(raw)
    if not reply.ok:
        raise CommandError(reply.error_code, f"host {host.name}: {reply.error_message}")
    return reply.result


def status_many(hosts: list[Host], timeout_s: float) -> dict[str, dict[str, Any] | str]:
    """Every host's status at once: a dict per host that answered, the reason for the rest."""

    def one(host: Host) -> dict[str, Any] | str:
        try:
            result: dict[str, Any] = request(host, "status", {}, timeout_s)
        except (UnreachableError, CommandError) as e:
            return str(e)
        return result

    with ThreadPoolExecutor(max_workers=min(32, len(hosts)) or 1) as pool:
        return dict(zip([h.name for h in hosts], pool.map(one, hosts), strict=True))
