from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.harness import Supervisor


@pytest.fixture
def sup() -> Iterator[Supervisor]:
    """A supervisor under test; whatever happens, its processes are gone afterwards."""
    s = Supervisor()
    try:
        yield s
    finally:
        s.cleanup()


# The queue fixture of the Redis tests (a test's own keys, deleted once its workers are gone).
from tests.integration.redisqueue import queue  # noqa: E402, F401

# The private redis-server fixture of the Redis tests (started and stopped by the test).
from tests.integration.test_cache import private_redis  # noqa: E402, F401
