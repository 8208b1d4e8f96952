"""`supervisor run`: load the config, start the fork server early, then run the owner loop.

The one door from the CLI into the daemon. The fork server is launched before anyio and the
loop are imported, so it warms up (its own imports) while we import ours.
"""

from __future__ import annotations

import os
import signal
import sys

from supervisor.config import cgroup_host
from supervisor.config import model as config
from supervisor.daemon.helpers import forkserver
from supervisor.errors import ExitCode


def run(config_path: str) -> int:
    """Run the fleet of `config_path` in the foreground until it is shut down."""
    if os.getpid() == 1:
        # PID 1 gets no default signal actions: until the loop's handlers are in place, a
        # SIGTERM would be ignored. Exiting is safe here: the namespace dies with us.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    cfg = config.load(config_path)
    cgroup_host.check_resources(cfg)  # as `check` does: limits the host cannot give stop here
    early = forkserver.launch() if cfg.uses_fork_server else None

    import anyio  # noqa: PLC0415  (after the fork server is on its way)

    from supervisor.daemon import logs  # noqa: PLC0415
    from supervisor.daemon.owner import Supervisor  # noqa: PLC0415

    logs.configure(cfg.supervisor.log_level, cfg.supervisor.log_format)
    anyio.run(Supervisor(cfg, early).run, backend="asyncio")
    return ExitCode.OK
