"""Public path of the SDK's cache client (`worker.cache`).

The code lives in `supervisor/sdk/cache.py`.
This path stays whatever moves behind it.
"""

from supervisor.sdk.cache import (
    AsyncCache,
    CacheStats,
    SyncCache,
)
from supervisor.wire.cache import DEFAULT_URL

__all__ = [
    "DEFAULT_URL",
    "AsyncCache",
    "CacheStats",
    "SyncCache",
]
