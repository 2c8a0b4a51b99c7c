"""InboxWriter: the inbox's writes that the IngestActor cannot take: status changes and the
full-text index.

The IngestActor stays the only writer of message rows (Execute's follow-up goes through
it). Its protocol has no op for an UPDATE of `status` and its SQL triggers cannot index
gzip content, so this actor owns a second connection for those two small jobs. SQLite
serializes the two writers; each transaction here is short (one UPDATE, or one chunk of
index rows prepared before the transaction starts), so ingest waits at most milliseconds.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

from relay_app.errors import RelayAppError, StorageFull, StoreUnavailable
from relay_app.inbox.search import content_text
from runtime import sqlite as rsqlite
from runtime.envelope import decode_content
from runtime.ticker import Ticker

logger = logging.getLogger(__name__)

INDEX_CHUNK = 2000
INDEX_INTERVAL_S = 0.2
ASK_TIMEOUT_S = 15.0
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class SetStatus:
    """Move messages to `status`, only from one of `from_statuses` (so repeats change nothing)."""

    msg_ids: tuple[str, ...]
    status: str
    from_statuses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IndexNew:
    """Index the next chunk of messages stored since the last run."""


def index_pending(conn: sqlite3.Connection, limit: int = INDEX_CHUNK) -> int:
    """Add the next `limit` unindexed messages to `messages_fts`; return how many."""
    start = int(
        conn.execute("SELECT value FROM inbox_state WHERE key = 'fts_indexed_id'").fetchone()[0]
    )
    rows = conn.execute(
        "SELECT id, content FROM messages WHERE id > ? ORDER BY id LIMIT ?", (start, limit)
    ).fetchall()
    if not rows:
        return 0
    entries = [(row_id, _text(blob)) for row_id, blob in rows]
    with rsqlite.transaction(conn):
        conn.executemany("INSERT INTO messages_fts (rowid, body) VALUES (?, ?)", entries)
        conn.execute(
            "UPDATE inbox_state SET value = ? WHERE key = 'fts_indexed_id'", (rows[-1][0],)
        )
    return len(rows)


def _text(blob: bytes) -> str:
    try:
        return content_text(decode_content(blob))
    except Exception:  # an undecodable blob is indexed as empty, not retried forever
        logger.warning("message content cannot be decoded; indexed as empty")
        return ""


def set_status(conn: sqlite3.Connection, op: SetStatus) -> int:
    """Apply `op` in one transaction; return the number of messages it changed."""
    changed = 0
    allowed = ",".join("?" * len(op.from_statuses))
    with rsqlite.transaction(conn):
        for i in range(0, len(op.msg_ids), _IN_CHUNK):
            ids = op.msg_ids[i : i + _IN_CHUNK]
            cursor = conn.execute(
                f"UPDATE messages SET status = ? WHERE msg_id IN ({','.join('?' * len(ids))})"
                f" AND status IN ({allowed})",
                (op.status, *ids, *op.from_statuses),
            )
            changed += cursor.rowcount
    return changed


class InboxWriterActor(pykka.ThreadingActor):
    """Owns the inbox's write connection."""

    # A relay that forgets to stop the inbox must still be able to exit.
    use_daemon_thread = True

    def __init__(self, path: Path, synchronous: str) -> None:
        """Remember where the database is; the connection opens in `on_start`."""
        super().__init__()
        self._path = path
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None

    def on_start(self) -> None:
        """Open the connection in the actor's thread."""
        self._conn = rsqlite.connect(self._path, synchronous=self._synchronous)

    def on_stop(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def on_failure(self, *_: object) -> None:
        """Close the connection after a crash too."""
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        """Handle SetStatus (answers the count or an error) and IndexNew."""
        assert self._conn is not None
        if isinstance(message, SetStatus):
            try:
                return set_status(self._conn, message)
            except sqlite3.Error as exc:
                return _converted(exc)
        if isinstance(message, IndexNew):
            self._index()
            return None
        return super().on_receive(message)

    def _index(self) -> None:
        assert self._conn is not None
        try:
            done = index_pending(self._conn)
        except sqlite3.Error as exc:
            logger.warning("full-text indexing failed (retried on the next tick): %s", exc)
            return
        if done == INDEX_CHUNK:
            # More waits: continue after whatever else is queued (status changes first).
            self.actor_ref.tell(IndexNew())


def _converted(exc: sqlite3.Error) -> RelayAppError:
    if rsqlite.is_disk_full(exc):
        return StorageFull("the cluster database is full; the status was not changed")
    return StoreUnavailable(f"the cluster database failed: {exc}")


class InboxWriter:
    """Handle on the InboxWriterActor plus the ticker that keeps the index in step."""

    def __init__(self, path: Path, synchronous: str) -> None:
        """Start the actor and the indexing ticker."""
        self._ref = InboxWriterActor.start(path, synchronous)
        self._ticker = Ticker()
        self._ticker.every(INDEX_INTERVAL_S, "inbox-fts", self.index_soon)
        self._ticker.start()

    def index_soon(self) -> None:
        """Ask for an indexing pass (the ticker calls this; so can tests)."""
        if self._ref.is_alive():
            self._ref.tell(IndexNew())

    def set_status(self, msg_ids: Sequence[str], status: str, from_statuses: Sequence[str]) -> int:
        """Change statuses; return how many messages changed."""
        op = SetStatus(tuple(msg_ids), status, tuple(from_statuses))
        try:
            reply = self._ref.ask(op, timeout=ASK_TIMEOUT_S)
        except pykka.ActorDeadError as exc:
            raise StoreUnavailable("the inbox writer has stopped") from exc
        except pykka.Timeout as exc:
            raise StoreUnavailable("the status change did not commit in time") from exc
        if isinstance(reply, RelayAppError):
            raise type(reply)(str(reply))
        assert isinstance(reply, int)
        return reply

    def stop(self) -> None:
        """Stop the ticker, then the actor."""
        self._ticker.stop()
        if self._ref.is_alive():
            self._ref.stop()
