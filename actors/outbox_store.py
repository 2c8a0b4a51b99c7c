"""The durable outbox of one agent: batches of unsynced messages in `outbox.db`.

A batch's payload is the exact gzip body of `POST /sync/messages`, so a retry
sends stored bytes without re-encoding. Acked batches are deleted; batches the
relay rejects as invalid are kept with status 'failed' until an operator retries.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from runtime.envelope import GZIP_LEVEL, MessageEnvelope, new_msg_id
from runtime.relay_client import batch_body
from runtime.sqlite import connect, migrate, transaction

CREATE_OUTBOX = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT UNIQUE NOT NULL,
    payload BLOB,  -- GZIP compressed batch
    created_at REAL,
    status TEXT DEFAULT 'pending',  -- pending, sending, acked, failed
    retry_count INTEGER DEFAULT 0,
    last_attempt REAL,
    message_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)"""
# Which batch covers which message: recovery enqueues only what no batch covers.
CREATE_OUTBOX_MESSAGES = """
CREATE TABLE outbox_messages (
    msg_id TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL REFERENCES outbox (batch_id) ON DELETE CASCADE
)"""
CREATE_IDX_STATUS = "CREATE INDEX idx_outbox_status ON outbox (status, id)"
CREATE_IDX_BATCH = "CREATE INDEX idx_outbox_messages_batch ON outbox_messages (batch_id)"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (CREATE_OUTBOX, CREATE_OUTBOX_MESSAGES, CREATE_IDX_STATUS, CREATE_IDX_BATCH),
)


def outbox_path(data_dir: str | Path, agent_id: str) -> Path:
    """Return `<node_data_dir>/cache/<agent_id>/outbox.db`."""
    return Path(data_dir) / "cache" / agent_id / "outbox.db"


@dataclass(frozen=True)
class Batch:
    """One pending batch as read back for sending."""

    batch_id: str
    payload: bytes
    msg_ids: tuple[str, ...]
    retry_count: int


class OutboxStore:
    """SQLite operations on outbox.db; single-threaded by contract."""

    def __init__(
        self,
        path: str | Path,
        *,
        node_id: str,
        batch_size: int = 500,
        synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node_id = node_id
        self.batch_size = batch_size
        self.clock = clock
        self.conn = connect(path, synchronous=synchronous)
        migrate(self.conn, MIGRATIONS)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def enqueue(self, envelopes: Sequence[MessageEnvelope]) -> int:
        """Store messages no batch covers yet, filling the open batch first; return how many."""
        fresh = self._uncovered(envelopes)
        if not fresh:
            return 0
        now = self.clock()
        with transaction(self.conn):
            rest = self._top_up(fresh, now)
            for start in range(0, len(rest), self.batch_size):
                self._insert_batch(rest[start : start + self.batch_size], now)
        return len(fresh)

    def _top_up(self, fresh: list[MessageEnvelope], now: float) -> list[MessageEnvelope]:
        """Grow the newest never-tried batch with `fresh`; return what did not fit.

        Without this, a relay outage leaves one tiny batch per write. The grown batch gets
        a new batch_id: the old id may have reached the relay just before a crash, and the
        relay answers a known batch_id with its old ack without storing anything new.
        """
        row = self.conn.execute(
            "SELECT batch_id, payload, message_count FROM outbox WHERE status = 'pending'"
            " AND retry_count = 0 AND message_count < ? ORDER BY id DESC LIMIT 1",
            (self.batch_size,),
        ).fetchone()
        if row is None:
            return fresh
        old_id, payload, count = row
        take, rest = fresh[: self.batch_size - count], fresh[self.batch_size - count :]
        messages = _messages_of(payload)
        if messages is None:
            return fresh  # not a payload we can grow (damaged or foreign): leave it alone
        messages.extend(env.to_wire() for env in take)
        new_id = new_msg_id(now)
        body = orjson.dumps({"batch_id": new_id, "node_id": self.node_id, "messages": messages})
        self.conn.execute(
            "INSERT INTO outbox (batch_id, payload, created_at, message_count)"
            " SELECT ?, ?, created_at, ? FROM outbox WHERE batch_id = ?",
            (new_id, gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0), len(messages), old_id),
        )
        self.conn.execute(
            "UPDATE outbox_messages SET batch_id = ? WHERE batch_id = ?", (new_id, old_id)
        )
        self.conn.execute("DELETE FROM outbox WHERE batch_id = ?", (old_id,))
        self.conn.executemany(
            "INSERT INTO outbox_messages (msg_id, batch_id) VALUES (?, ?)",
            [(env.msg_id, new_id) for env in take],
        )
        return rest

    def _insert_batch(self, chunk: Sequence[MessageEnvelope], now: float) -> None:
        batch_id = new_msg_id(now)
        payload = gzip.compress(
            batch_body(batch_id, self.node_id, list(chunk)), compresslevel=GZIP_LEVEL, mtime=0
        )
        self.conn.execute(
            "INSERT INTO outbox (batch_id, payload, created_at, message_count) VALUES (?, ?, ?, ?)",
            (batch_id, payload, now, len(chunk)),
        )
        self.conn.executemany(
            "INSERT INTO outbox_messages (msg_id, batch_id) VALUES (?, ?)",
            [(env.msg_id, batch_id) for env in chunk],
        )

    def _uncovered(self, envelopes: Sequence[MessageEnvelope]) -> list[MessageEnvelope]:
        """Keep the envelopes (first of each msg_id) that no stored batch covers."""
        ids = self.covered({env.msg_id for env in envelopes})
        fresh: dict[str, MessageEnvelope] = {}
        for env in envelopes:
            if env.msg_id not in ids:
                fresh.setdefault(env.msg_id, env)
        return list(fresh.values())

    def covered(self, msg_ids: set[str]) -> set[str]:
        """Return the subset of msg_ids that some batch (pending or failed) covers."""
        found: set[str] = set()
        ids = list(msg_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT msg_id FROM outbox_messages WHERE msg_id IN ({marks})", chunk
            )
            found.update(row[0] for row in rows)
        return found

    def next_pending(self) -> Batch | None:
        """Return the oldest pending batch, or None."""
        row = self.conn.execute(
            "SELECT batch_id, payload, retry_count FROM outbox"
            " WHERE status = 'pending' ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        ids = self.conn.execute(
            "SELECT msg_id FROM outbox_messages WHERE batch_id = ?", (row[0],)
        ).fetchall()
        return Batch(row[0], row[1], tuple(r[0] for r in ids), row[2])

    def acked(self, batch_id: str) -> None:
        """Delete an acknowledged batch (and, by cascade, its message list)."""
        with transaction(self.conn):
            self.conn.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,))

    def attempt_failed(self, batch_id: str, error: str) -> None:
        """Record a retryable failure of one batch."""
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE outbox SET retry_count = retry_count + 1, last_attempt = ?, last_error = ?"
                " WHERE batch_id = ?",
                (self.clock(), error[:500], batch_id),
            )

    def set_failed(self, batch_id: str, error: str) -> None:
        """Set a batch aside: the relay rejected it as invalid."""
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE outbox SET status = 'failed', last_attempt = ?, last_error = ?"
                " WHERE batch_id = ?",
                (self.clock(), error[:500], batch_id),
            )

    def retry_failed(self) -> int:
        """Move every failed batch back to pending; return how many."""
        with transaction(self.conn):
            cur = self.conn.execute(
                "UPDATE outbox SET status = 'pending', retry_count = 0 WHERE status = 'failed'"
            )
        return cur.rowcount

    def counts(self) -> dict[str, tuple[int, int]]:
        """Return {status: (batches, messages)}."""
        rows = self.conn.execute(
            "SELECT status, COUNT(*), COALESCE(SUM(message_count), 0) FROM outbox GROUP BY status"
        ).fetchall()
        return {status: (int(b), int(m)) for status, b, m in rows}


def _messages_of(payload: bytes) -> list[Any] | None:
    """The message list of a stored batch payload, or None if it is not one."""
    try:
        messages = orjson.loads(gzip.decompress(payload)).get("messages")
    except (OSError, ValueError, EOFError, AttributeError):
        return None
    return messages if isinstance(messages, list) else None
