"""The cache warmer's messages, worker -> supervisor (plugin kinds 32-33), and its env keys.

    [32, key, hits, misses, early, load_ms, ttl_left_ms, ttl_ms]   CACHE_READS, summed per batch
    [33, key, outcome, load_ms, ttl_ms]                             WARMED, the result of a WARM

The SDK's cache (`supervisor/sdk/cache.py`) writes them, the cache_warmer plugin reads them;
both import them from here, so neither imports the other.
"""

from __future__ import annotations

CACHE_READS = 32
WARMED = 33
WARM_OUTCOMES = ("ok", "failed", "no_loader", "redis_down", "busy")
DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_ENV = "SUPERVISOR_CACHE_URL"
REPORT_ENV = "SUPERVISOR_CACHE_WARMER"  # set when the supervisor reads our reports
