"""Test bots of the resource isolation tests (issue 16); none speaks the SDK.

`report` reads /proc/self/cgroup as the module's first statement, before any other code of
the bot runs, and writes it to $REPORT_DIR/cg.WORKER: the worker must already be in its group.
"""

_CGROUP = open("/proc/self/cgroup").read()  # noqa: SIM115  (first: before anything else)

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402


def _report(name: str, text: str) -> None:
    path = os.path.join(os.environ["REPORT_DIR"], f"{name}.{os.environ['SUPERVISOR_WORKER']}")
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)  # whole or absent


def report() -> None:
    _report("cg", _CGROUP)
    while True:
        time.sleep(3600)


def report_at_call() -> None:
    """For a preloaded bot: its zygote imported the module, so the bot's first code is here."""
    with open("/proc/self/cgroup") as f:
        _report("cg", f.read())
    while True:
        time.sleep(3600)


def hog() -> None:
    """Take memory 8 MiB at a time, touching every page, until the kernel stops it."""
    hoard = []
    _report("hog", "started")
    while True:
        hoard.append(bytearray(8 << 20))
        time.sleep(0.01)


def burn() -> None:
    """Spin on one core for ever."""
    while True:
        pass


def fork_bomb() -> None:
    """Fork children that sleep, until fork fails; report how many got through and why."""
    children = 0
    error = ""
    for _ in range(10_000):
        try:
            pid = os.fork()
        except OSError as e:
            error = e.strerror or str(e)
            break
        if pid == 0:
            time.sleep(3600)
            os._exit(0)
        children += 1
    _report("bomb", f"{children} {error}")
    while True:
        time.sleep(3600)


def daemonise() -> None:
    """Double-fork a daemon that leaves the process group and ignores SIGTERM; report its pid."""
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        os.chdir("/")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _report("daemon", str(os.getpid()))
        while True:
            time.sleep(3600)
    os.waitpid(pid, 0)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    globals()[sys.argv[1]]()
