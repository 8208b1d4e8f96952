"""Bots of other users get a worker endpoint in a directory only their user can enter."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from supervisor.config.process import ProcessSettings
from supervisor.daemon.endpoints import WorkerEndpoints

if TYPE_CHECKING:
    from supervisor.wire.transport import WorkerServer


class FakeServer:
    """Records the extra endpoints asked for instead of binding them."""

    def __init__(self) -> None:
        self.added: list[tuple[Path, int, int]] = []

    def add_endpoint(self, path: Path, uid: int, gid: int) -> str:
        self.added.append((path, uid, gid))
        return f"ipc://{path}"


def new_endpoints(run_dir: Path) -> tuple[WorkerEndpoints, FakeServer]:
    run_dir.mkdir(mode=0o700)
    server = FakeServer()
    return WorkerEndpoints(run_dir, cast("WorkerServer", server)), server


def test_our_own_user_and_no_user_share_the_main_endpoint(tmp_path: Path) -> None:
    """No extra endpoint, and run_dir stays 0700."""
    endpoints, server = new_endpoints(tmp_path / "run")
    for settings in (ProcessSettings(), ProcessSettings(uid=os.geteuid(), gid=12345)):
        assert endpoints.for_process(settings) == f"ipc://{tmp_path}/run/workers"
    assert server.added == []
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_each_other_user_and_group_gets_one_directory_of_its_own(tmp_path: Path) -> None:
    """Bound once per (uid, gid); the directory is 0700 of that user; run_dir only 0711."""
    endpoints, server = new_endpoints(tmp_path / "run")
    first = endpoints.for_process(ProcessSettings(uid=65534, gid=65534))
    again = endpoints.for_process(ProcessSettings(uid=65534, gid=65534))
    other = endpoints.for_process(ProcessSettings(uid=1, gid=1))
    directory = tmp_path / "run" / "workers.d" / "65534-65534"
    assert first == again == f"ipc://{directory}/workers" != other
    assert [(uid, gid) for _, uid, gid in server.added] == [(65534, 65534), (1, 1)]
    info = directory.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (65534, 65534, 0o700)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o711
