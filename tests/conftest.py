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
