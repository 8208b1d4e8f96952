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
