"""The session fixtures over tests/services.py, imported by tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import services

_started: list[str] = []  # one line per private server, for the end of the run


@pytest.fixture(scope="session")
def redis_service() -> Iterator[services.RedisService]:
    """The session's Redis: $SUPERVISOR_TEST_REDIS if it answers, else a private one."""
    try:
        service = services.open_redis()
    except services.ServiceUnavailable as e:
        pytest.skip(f"no Redis: {e}")
    _note(service, "redis-server", services.REDIS_ENV)
    try:
        yield service
    finally:
        services.close(service)


@pytest.fixture(scope="session")
def postgres_service() -> Iterator[services.PostgresService]:
    """The session's PostgreSQL: $SUPERVISOR_TEST_POSTGRES if it answers, else a private one."""
    try:
        service = services.open_postgres()
    except services.ServiceUnavailable as e:
        pytest.skip(f"no PostgreSQL: {e}")
    _note(service, "PostgreSQL", services.POSTGRES_ENV)
    try:
        yield service
    finally:
        services.close(service)


def _note(service: services.Service, name: str, variable: str) -> None:
    if service.private is not None:
        _started.append(
            f"private {name} on {service.host}:{service.port} (started in "
            f"{service.start_s:.2f} s; ${variable} did not answer)"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _started:
        terminalreporter.write_line(line)
