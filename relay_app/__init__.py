"""The relay: the cluster's store behind an HTTP API, the `/messages` inbox and its CLI.

It stands on the kernel (`runtime.core`) only. Every read and write of its data goes
through the protocols of `relay_app.store`, implemented in `relay_app.stores`.
"""

from runtime.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "app": ("create_app",),
        "server": ("RelayServer",),
        "ingest": ("IngestActor", "Ingest"),
        "store": ("MessageStore", "StoreWriter"),
        "cli": ("main",),
    },
)
