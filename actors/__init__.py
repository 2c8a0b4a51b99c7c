"""A node's actors: each agent's cache and outbox, the node's uploader and metrics.

They stand on the kernel (`runtime.core`) and talk through the messages of `actors.messages`.
"""

from runtime.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "cache": ("CacheActor",),
        "outbox": ("OutboxActor",),
        "uploader": ("UploaderActor", "UploadRoute"),
        "metrics": ("MetricsActor",),
        "cache_store": ("CacheStore",),
        "outbox_store": ("OutboxStore",),
    },
)
