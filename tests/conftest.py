"""Suite-wide test settings.

Hypothesis runs under one profile so that no property test depends on the machine's speed or on
a `.hypothesis/` database left by an earlier run: a fixed example budget, no deadline, no health
check that times generation, and no example database (a fresh clone and a used checkout run the
same examples). `HYPOTHESIS_PROFILE=thorough` runs ten times the examples, for a long look.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=_QUIET, database=None
)
settings.register_profile(
    "thorough", max_examples=3000, deadline=None, suppress_health_check=_QUIET, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# The Redis and PostgreSQL of the tests: the system ones when they answer, else private ones
# for the session (tests/services.py decides; SUPERVISOR_TEST_REDIS / _POSTGRES name them).
from tests.services_fixtures import (  # noqa: E402, F401
    postgres_service,
    pytest_terminal_summary,
    redis_service,
)
