"""Public path of the SDK's PostgreSQL pool (`worker.db_pool()`).

The code lives in `supervisor/sdk/dbpool.py`.
This path stays whatever moves behind it.
"""

from supervisor.sdk.dbpool import (
    STATS_EVERY_S,
    BudgetPool,
    PoolClient,
    pool_arguments,
)

__all__ = [
    "STATS_EVERY_S",
    "BudgetPool",
    "PoolClient",
    "pool_arguments",
]
