"""Implementations of the `relay_app.store` protocols; the only modules that hold SQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.core.lazy import lazy_exports

if TYPE_CHECKING:
    from relay_app.store import MessageStore
    from runtime.core.config import RelaySettings

__all__, __getattr__, __dir__ = lazy_exports(__name__, {"sqlite": ("SqliteStore",)})


def open_store(settings: RelaySettings) -> MessageStore:
    """The store `relay.store` names: SQLite under data_dir, or a PostgreSQL database.

    Each engine is imported only when chosen: a SQLite relay never loads psycopg.
    """
    if settings.store == "sqlite":
        from relay_app.stores.sqlite import SqliteStore  # noqa: PLC0415

        return SqliteStore(settings.data_dir, synchronous=settings.synchronous)
    from relay_app.stores.postgres import PostgresStore  # noqa: PLC0415

    # One reading connection per HTTP worker thread: a request never waits for another's.
    return PostgresStore(settings.store, pool_size=settings.threads)
