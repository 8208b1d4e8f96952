"""Public path of the bot SDK: `from supervisor.worker import Worker`.

The code lives in `supervisor/sdk/worker.py`.
This path stays whatever moves behind it.
"""

from supervisor.sdk.link import Settings
from supervisor.sdk.worker import (
    BATCH_BYTES,
    BATCH_MESSAGES,
    FLUSH_AFTER_S,
    MAX_BUFFERED_METRICS,
    AsyncWorker,
    Control,
    NullSyncWorker,
    NullWorker,
    SyncWorker,
    Worker,
)

__all__ = [
    "BATCH_BYTES",
    "BATCH_MESSAGES",
    "FLUSH_AFTER_S",
    "MAX_BUFFERED_METRICS",
    "AsyncWorker",
    "Control",
    "NullSyncWorker",
    "NullWorker",
    "Settings",
    "SyncWorker",
    "Worker",
]
