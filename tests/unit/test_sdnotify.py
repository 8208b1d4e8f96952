"""systemd's variables, read: socket addresses, the watchdog interval, and taking them out of
the environment that workers inherit."""

from __future__ import annotations

import pytest

from supervisor.daemon.sdnotify import Notifier, socket_address, watchdog_interval_s


@pytest.mark.parametrize(
    ("value", "address"),
    [("/run/systemd/notify", "/run/systemd/notify"), ("@name", "\0name"), ("@", None),
     ("vsock:2:1234", None), ("relative/path", None)],
)  # fmt: skip
def test_socket_addresses(value: str, address: str | None) -> None:
    """A path is a path, @name is abstract; anything else is not spoken."""
    assert socket_address(value) == address


@pytest.mark.parametrize(
    ("usec", "pid", "interval_s"),
    [("30000000", None, 15.0), ("200000", "42", 0.1), ("200000", "43", None), ("0", None, None),
     (None, None, None), ("soon", None, None), ("-5", None, None)],
)  # fmt: skip
def test_watchdog_pings_at_half_the_interval_and_only_for_our_pid(
    usec: str | None, pid: str | None, interval_s: float | None
) -> None:
    """Pings every half WATCHDOG_USEC, and none when WATCHDOG_PID names another process."""
    assert watchdog_interval_s(usec, pid, 42) == interval_s


def test_the_variables_leave_the_environment_workers_copy() -> None:
    """NOTIFY_SOCKET and WATCHDOG_* are taken out, so workers never see them."""
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1", "HOME": "/"}
    notifier = Notifier.from_environ(env)
    try:
        assert env == {"HOME": "/"}
        assert notifier.enabled
        assert notifier.address == "\0x"
    finally:
        notifier.close()


def test_without_systemd_nothing_is_sent() -> None:
    """No NOTIFY_SOCKET: every send is a no-op that says so."""
    notifier = Notifier.from_environ({"HOME": "/"})
    assert not notifier.enabled
    assert notifier.send("READY=1") is False
