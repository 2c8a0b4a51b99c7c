"""The durable outbox of one agent: batches of unsynced messages in `outbox.db`.

A batch is open while messages join it: each message's wire JSON waits in its
`outbox_messages` row, so joining costs one row, whatever the batch size. Just
before its first send the batch is frozen: its payload, the exact gzip body of
`POST /sync/messages`, is built once and never changes, so every retry sends the
same bytes under the same batch_id. Acked batches are deleted; batches the relay
rejects as invalid are kept with status 'failed' until an operator retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from runtime.core.envelope import MAX_BATCH_BYTES, MessageEnvelope, new_msg_id
from runtime.core.sqlite import connect, in_chunks, migrate, transaction
from runtime.core.wire import batch_gzip, batch_messages, message_json

logger = logging.getLogger(__name__)

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

# Migration 2: open batches keep their messages as rows until frozen (payload NULL till then).
ADD_WIRE = "ALTER TABLE outbox_messages ADD COLUMN wire BLOB"
# Room for messages' wire JSON in one batch body (the rest is its head and brackets), so
# every batch stays under the relay's body limit, checked after decompression.
BATCH_ROOM = MAX_BATCH_BYTES - 1024

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (CREATE_OUTBOX, CREATE_OUTBOX_MESSAGES, CREATE_IDX_STATUS, CREATE_IDX_BATCH),
    (ADD_WIRE,),
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
        now = self.clock()
        with transaction(self.conn):
            batch_id, room, space = self._open_batch()
            chunk: list[tuple[str, bytes]] = []
            for env in fresh:
                wire = message_json(env)
                if room == 0 or len(wire) + 1 > space:
                    self._join(batch_id, chunk)
                    batch_id, room, space = self._new_batch(now), self.batch_size, BATCH_ROOM
                    chunk = []
                chunk.append((env.msg_id, wire))
                room, space = room - 1, space - len(wire) - 1
            self._join(batch_id, chunk)
        return len(fresh)

    def _open_batch(self) -> tuple[str, int, int]:
        """The newest open (never frozen, so never sent) batch, its room in messages and in
        bytes; ("", 0, 0) if none."""
        row = self.conn.execute(
            "SELECT batch_id, message_count FROM outbox WHERE status = 'pending'"
            " AND payload IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return "", 0, 0
        used = self.conn.execute(
            "SELECT COALESCE(SUM(length(wire) + 1), 0) FROM outbox_messages WHERE batch_id = ?",
            (row[0],),
        ).fetchone()[0]
        return row[0], max(0, self.batch_size - row[1]), BATCH_ROOM - int(used)

    def _new_batch(self, now: float) -> str:
        batch_id = new_msg_id(now)
        self.conn.execute(
            "INSERT INTO outbox (batch_id, created_at, message_count) VALUES (?, ?, 0)",
            (batch_id, now),
        )
        return batch_id

    def _join(self, batch_id: str, chunk: Sequence[tuple[str, bytes]]) -> None:
        """Add (msg_id, wire JSON) rows to an open batch."""
        if not chunk:
            return
        self.conn.executemany(
            "INSERT INTO outbox_messages (msg_id, batch_id, wire) VALUES (?, ?, ?)",
            [(msg_id, batch_id, wire) for msg_id, wire in chunk],
        )
        self.conn.execute(
            "UPDATE outbox SET message_count = message_count + ? WHERE batch_id = ?",
            (len(chunk), batch_id),
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
        for marks, chunk in in_chunks(list(msg_ids)):
            rows = self.conn.execute(
                f"SELECT msg_id FROM outbox_messages WHERE msg_id IN ({marks})", chunk
            )
            found.update(row[0] for row in rows)
        return found

    def next_pending(self) -> Batch | None:
        """Return the oldest pending batch, frozen (its payload built) if it was still open."""
        # By creation time: the halves of a split batch go before the batches made after it.
        row = self.conn.execute(
            "SELECT batch_id, payload, retry_count FROM outbox"
            " WHERE status = 'pending' ORDER BY created_at, id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        batch_id, payload, retries = row
        if payload is None:
            payload = self._freeze(batch_id)
        ids = self.conn.execute(
            "SELECT msg_id FROM outbox_messages WHERE batch_id = ? ORDER BY rowid", (batch_id,)
        ).fetchall()
        return Batch(batch_id, payload, tuple(r[0] for r in ids), retries)

    def _freeze(self, batch_id: str) -> bytes:
        """Build the batch's payload from its rows, once; it never changes after this."""
        rows = self.conn.execute(
            "SELECT msg_id, wire FROM outbox_messages WHERE batch_id = ? ORDER BY rowid",
            (batch_id,),
        ).fetchall()
        wires = [w for _, w in rows if isinstance(w, bytes)]
        # The messages are already JSON: spliced into the body, not encoded again.
        payload = batch_gzip(batch_id, self.node_id, wires)
        with transaction(self.conn):
            # A row without its wire (a bug, an old version) leaves the batch uncovered:
            # the outbox's sweep sends that message again from messages.db.
            self.conn.executemany(
                "DELETE FROM outbox_messages WHERE msg_id = ? AND wire IS NULL",
                [(m,) for m, w in rows if not isinstance(w, bytes)],
            )
            self.conn.execute(
                "UPDATE outbox SET payload = ? WHERE batch_id = ?", (payload, batch_id)
            )
            self.conn.execute(
                "UPDATE outbox_messages SET wire = NULL WHERE batch_id = ?", (batch_id,)
            )
        return payload

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

    def split(self, batch_id: str) -> bool:
        """Replace a batch by two batches of its halves, same creation time; False if it cannot.

        A batch cannot be split when it holds one message or its payload does not read
        back as the messages it covers.
        """
        row = self.conn.execute(
            "SELECT payload, created_at FROM outbox WHERE batch_id = ?", (batch_id,)
        ).fetchone()
        messages = batch_messages(row[0] if row else None)
        covered = [
            r[0]
            for r in self.conn.execute(
                "SELECT msg_id FROM outbox_messages WHERE batch_id = ? ORDER BY rowid", (batch_id,)
            )
        ]
        if messages is None or len(messages) < 2 or _ids(messages) != covered:
            return False
        middle = len(messages) // 2
        with transaction(self.conn):
            self._delete(batch_id)
            for half in (messages[:middle], messages[middle:]):
                self._add_frozen(half, row[1])
        return True

    def dissolve(self, batch_id: str) -> None:
        """Delete a batch that cannot be sent or split; the sweep re-enqueues its messages."""
        with transaction(self.conn):
            self._delete(batch_id)

    def _delete(self, batch_id: str) -> None:
        self.conn.execute("DELETE FROM outbox_messages WHERE batch_id = ?", (batch_id,))
        self.conn.execute("DELETE FROM outbox WHERE batch_id = ?", (batch_id,))

    def _add_frozen(self, messages: list[dict[str, object]], created_at: float) -> None:
        batch_id = new_msg_id(self.clock())
        payload = batch_gzip(batch_id, self.node_id, map(orjson.dumps, messages))
        self.conn.execute(
            "INSERT INTO outbox (batch_id, payload, created_at, message_count) VALUES (?, ?, ?, ?)",
            (batch_id, payload, created_at, len(messages)),
        )
        self.conn.executemany(
            "INSERT INTO outbox_messages (msg_id, batch_id) VALUES (?, ?)",
            [(m, batch_id) for m in _ids(messages)],
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


def _ids(messages: list[dict[str, object]]) -> list[object]:
    return [m.get("msg_id") for m in messages]
