"""The one pool of read-only connections to the cluster database, shared by every read.

WAL readers never wait for the writer. A connection is lent for one read transaction
(DEFERRED, so the figures of one read match its rows) and opened only when every other
is lent, so the pool grows to the number of reads that ever ran at once.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relay_app.errors import StoreUnavailable
from runtime.core import sqlite as rsqlite


class ReadPool:
    """Read-only connections to one database file, lent one read at a time."""

    def __init__(self, path: Path) -> None:
        """No connection opens before the first read."""
        self.path = path
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection inside one read transaction; SQLite errors become StoreUnavailable."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._open()
        try:
            with rsqlite.transaction(conn, "DEFERRED"):
                yield conn
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"reading the cluster database failed: {exc}") from exc
        finally:
            conn.set_progress_handler(None, 0)  # a budget left behind must not stop the next read
            self._idle.put(conn)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = rsqlite.connect(self.path, read_only=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"opening the cluster database failed: {exc}") from exc
        with self._lock:
            self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection (a read still running keeps its own until it ends)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
