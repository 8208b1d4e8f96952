"""The SDK's side of a grant (sync client, no server needed: grants of 0 open nothing)."""

from __future__ import annotations

import os
from typing import Any

from supervisor.sdk.dbpool_sync import SyncPoolClient
from supervisor.sdk.link import Settings
from supervisor.wire.db import CONFIG_KEY, DB_ACK, DB_WANT


class FakeLink:
    """What SyncPoolClient needs of a SyncWorker, recording what it would send."""

    def __init__(self) -> None:
        self.settings = Settings("ipc:///nowhere", b"t" * 16, "bot", 3, 1, 2.5, 15)
        self.sent: list[list[Any]] = []

    def send_plugin_message(self, message: list[Any]) -> None:
        self.sent.append(message)

    def report(self, message: list[Any]) -> None:
        self.sent.append(message)


def grant(generation: int, size: int, pid: int | None = None) -> dict[str, Any]:
    values = {"generation": generation, "size": size, "dsn": "host=/nonexistent"}
    return {CONFIG_KEY: values | {"pid": os.getpid() if pid is None else pid}}


def test_a_grant_for_another_process_is_ignored() -> None:
    """A grant meant for the process before this one in its slot changes nothing."""
    link = FakeLink()
    client = SyncPoolClient(link, None, {})  # type: ignore[arg-type]
    assert link.sent == [[DB_WANT, 0, 0]]
    client.on_config(grant(5, 0, pid=os.getpid() + 1))
    assert client.pool is None
    client.on_config(grant(6, 0))
    assert client.pool is not None
    assert client.pool.closed  # a grant of 0 opens nothing
    assert [DB_ACK, 6, 0] in link.sent


def test_an_older_grant_is_ignored() -> None:
    """Grants apply in generation order; a late older one does not undo a newer one."""
    link = FakeLink()
    client = SyncPoolClient(link, None, {})  # type: ignore[arg-type]
    client.on_config(grant(7, 0))
    client.on_config(grant(4, 0))
    assert [m for m in link.sent if m[0] == DB_ACK] == [[DB_ACK, 7, 0]]
    assert client.pool is not None
    client.close()


def test_announce_says_what_it_holds() -> None:
    """Asked to announce itself (a new plugin), a worker says its grant's generation again."""
    link = FakeLink()
    client = SyncPoolClient(link, None, {})  # type: ignore[arg-type]
    client.on_config(grant(9, 0))
    client.on_config({CONFIG_KEY: {"announce": True}})
    assert link.sent[-1] == [DB_WANT, 0, 9]
