"""Which worker endpoint a bot's workers get, by the user they run as.

    run_dir/                    0700, or 0711 once a bot runs as another user
        control events workers  sockets 0600, the supervisor's user only
        workers.d/              0711, root's
            UID-GID/            0700, owned by UID:GID
                workers         the same workers ROUTER, bound once more (0600, UID:GID)

A worker that runs as the supervisor's user connects to `run_dir/workers`.
One that runs as another user could not (run_dir is the supervisor's
alone), so its (uid, gid) gets a directory of its own that only that user
(and root) can enter, and the ROUTER binds an endpoint there. Nobody else
reaches it; every frame is still authenticated by the worker's token.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import structlog

from supervisor.config.process import ProcessSettings
from supervisor.config.rundir import user_workers_path
from supervisor.wire.transport import WorkerServer, endpoint

log = structlog.get_logger("supervisor.endpoints")

_SOCKET_NAME = "workers"


class WorkerEndpoints:
    """The workers socket's endpoints: the main one, and one per other (uid, gid)."""

    def __init__(self, run_dir: Path, server: WorkerServer) -> None:
        self._run_dir = run_dir
        self._root = run_dir / "workers.d"
        self._server = server
        self._bound: dict[tuple[int, int], str] = {}
        shutil.rmtree(self._root, ignore_errors=True)  # the last run's, maybe of other users

    @property
    def main(self) -> str:
        return endpoint(self._run_dir / _SOCKET_NAME)

    def for_process(self, settings: ProcessSettings) -> str:
        """The endpoint for workers started with these settings (bound on first use)."""
        if settings.uid is None or settings.uid == os.geteuid():
            return self.main
        gid = settings.gid if settings.gid is not None else os.getegid()
        key = (settings.uid, gid)
        if key not in self._bound:
            self._bound[key] = self._bind(*key)
        return self._bound[key]

    def _bind(self, uid: int, gid: int) -> str:
        os.chmod(self._run_dir, 0o711)  # traversal only: nothing in it can be listed
        self._root.mkdir(mode=0o711, exist_ok=True)
        path = Path(user_workers_path(self._run_dir, uid, gid))
        directory = path.parent
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(mode=0o700)
        # Ours until the socket is bound and given away: the user could otherwise swap the
        # socket file for a symlink between bind and chown, and have root chown its target.
        address = self._server.add_endpoint(path, uid, gid)
        os.chown(directory, uid, gid, follow_symlinks=False)
        os.chmod(directory, 0o700)
        log.info("worker_endpoint_bound", uid=uid, gid=gid, endpoint=address)
        return address
