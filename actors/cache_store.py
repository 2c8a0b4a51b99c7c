"""The local message cache of one agent: a SQLite file, used from one thread.

CacheActor owns an instance and gives it its thread; nothing else touches it.
Size accounting is by SQLite pages in use (page_count - freelist_count), so the
figure is what the file really holds, and `max_page_count` gives tests a real
"disk full".
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from actors.cache_digests import CREATE_ACKED_HOURS, CREATE_MARKS, HeldDigests
from actors.messages import CacheStats, Query, UnsyncedRow
from actors.poison import cut, poison_reason
from runtime.core.envelope import MessageEnvelope, decode_content, encode_content
from runtime.core.errors import CacheFull, InvalidMessage
from runtime.core.sqlite import (
    connect,
    filter_terms,
    in_chunks,
    is_disk_full,
    migrate,
    transaction,
)

CREATE_MESSAGES = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT UNIQUE NOT NULL,
    timestamp REAL NOT NULL,
    task_id TEXT,
    sender TEXT,
    recipient TEXT,
    role TEXT,
    content BLOB,  -- GZIP compressed JSON (plain JSON when cache.compression is false)
    synced INTEGER DEFAULT 0,
    priority TEXT NOT NULL DEFAULT 'normal',
    node_id TEXT NOT NULL,
    agent_id TEXT NOT NULL
)"""
# Separate statements: SQLite has no INDEX clause inside CREATE TABLE.
CREATE_IDX_TASK = "CREATE INDEX idx_task ON messages (task_id)"
CREATE_IDX_TIMESTAMP = "CREATE INDEX idx_timestamp ON messages (timestamp)"
# (synced, timestamp) serves both "oldest unsynced" and "oldest synced to evict".
CREATE_IDX_SYNCED = "CREATE INDEX idx_synced ON messages (synced, timestamp)"
CREATE_IDX_SENDER = "CREATE INDEX idx_sender ON messages (sender, timestamp)"
CREATE_IDX_RECIPIENT = "CREATE INDEX idx_recipient ON messages (recipient, timestamp)"

# Migration 2: a message no stage can process is set aside (synced = SET_ASIDE) with a reason.
ADD_SET_ASIDE_REASON = "ALTER TABLE messages ADD COLUMN set_aside_reason TEXT"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        CREATE_MESSAGES,
        CREATE_IDX_TASK,
        CREATE_IDX_TIMESTAMP,
        CREATE_IDX_SYNCED,
        CREATE_IDX_SENDER,
        CREATE_IDX_RECIPIENT,
    ),
    (ADD_SET_ASIDE_REASON,),
    # 3: per hour, how many of the agent's messages the relay acknowledged (refill).
    (CREATE_ACKED_HOURS,),
    # 4: how far eviction reached, across restarts (refill).
    (CREATE_MARKS,),
)

# Values of messages.synced: 0 waits for the relay, 1 is acknowledged, 2 is set aside (kept,
# never evicted, never swept into the outbox again until an operator retries it).
UNSYNCED, SYNCED, SET_ASIDE = 0, 1, 2

INSERT = (
    "INSERT OR IGNORE INTO messages (msg_id, timestamp, task_id, sender, recipient, role,"
    " content, synced, priority, node_id, agent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
COLUMNS = (
    "id, msg_id, timestamp, task_id, sender, recipient, role, content, priority, node_id, agent_id"
)
# Rough per-row overhead beyond the content blob: columns, index entries, page slack.
ROW_OVERHEAD = 256
EVICT_CHUNK = 500
NEAR_LIMIT = 0.9
REFRESH_EVERY = 256
SHOW_SET_ASIDE = 5
GZIP_MAGIC = b"\x1f\x8b"
# One query answers at most this much content (and at least one message): a thousand
# messages at the 1 MiB content limit must not become a gigabyte held in memory.
QUERY_BYTES = 4 * 1024 * 1024

logger = logging.getLogger(__name__)
# What a write answers: its msg_id, or why it was refused.
WriteResult = str | CacheFull | InvalidMessage


def cache_path(data_dir: str | Path, agent_id: str) -> Path:
    """Return `<node_data_dir>/cache/<agent_id>/messages.db`."""
    return Path(data_dir) / "cache" / agent_id / "messages.db"


class CacheStore:
    """SQLite operations on one agent's messages.db; single-threaded by contract."""

    def __init__(
        self,
        path: str | Path,
        *,
        agent_id: str,
        max_bytes: int,
        retention_days: float = 30.0,
        compression: bool = True,
        synchronous: str = "FULL",
        max_page_count: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent_id = agent_id
        self.max_bytes = max_bytes
        self.retention_seconds = retention_days * 86400.0
        self.compression = compression
        self.clock = clock
        self.full = False
        self.refused_writes = 0
        self.conn = connect(path, synchronous=synchronous)
        migrate(self.conn, MIGRATIONS)
        if max_page_count is not None:
            # A hard cap on the file, below the disk: SQLite then reports SQLITE_FULL.
            self.conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
        self.page_size = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        self.held = HeldDigests(self.conn, agent_id)
        self._used = self.bytes_used()
        self._writes_since_refresh = 0

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    # --- writes -----------------------------------------------------------

    def write_many(self, envelopes: Sequence[MessageEnvelope]) -> list[WriteResult]:
        """Commit all of `envelopes` in one transaction, or refuse all with CacheFull.

        A msg_id held by another agent's message (read from the relay) is refused with
        InvalidMessage: ignored, the relay's copy would stand in for the agent's own.
        """
        rows = [self._row(env, synced=0) for env in envelopes]
        need = sum(len(row[6]) + ROW_OVERHEAD for row in rows)
        if not self._make_room(need):
            return [self._refuse(env, "unsynced messages fill it") for env in envelopes]
        # A full disk may be cured by evicting synced messages: try once more after that.
        for attempt in range(2):
            try:
                with transaction(self.conn):
                    inserted = self.conn.executemany(INSERT, rows).rowcount
                if inserted < len(rows):
                    return self._foreign_ids(envelopes)
                break
            except sqlite3.OperationalError as exc:
                if not is_disk_full(exc):
                    raise
                if attempt == 1 or self.evict_synced(EVICT_CHUNK) == 0:
                    return [self._refuse(env, "the disk or database is full") for env in envelopes]
        self.full = False
        return [env.msg_id for env in envelopes]

    def cache_remote(self, envelopes: Sequence[MessageEnvelope]) -> int:
        """Store relay-fetched messages as synced, only if they fit; return how many were stored."""
        rows = [self._row(env, synced=1) for env in envelopes]
        need = sum(len(row[6]) + ROW_OVERHEAD for row in rows)
        if not self._make_room(need):
            return 0
        try:
            with transaction(self.conn):
                self.conn.executemany(INSERT, rows)
        except sqlite3.OperationalError as exc:
            if is_disk_full(exc):
                return 0
            raise
        if any(env.agent_id == self.agent_id for env in envelopes):
            self.held.forget()  # its own messages, back from the relay: count them again
        return len(rows)

    def mark_synced(self, msg_ids: Sequence[str]) -> int:
        """Mark messages acknowledged by the relay (set aside or not); return how many changed."""
        changed: list[tuple[int, float, str, str]] = []
        with transaction(self.conn):
            for marks, chunk in in_chunks(msg_ids):
                changed += self.conn.execute(
                    "UPDATE messages SET synced = 1, set_aside_reason = NULL"
                    f" WHERE msg_id IN ({marks}) AND synced != 1"
                    " RETURNING id, timestamp, msg_id, agent_id",
                    chunk,
                ).fetchall()
            self.held.count_acked(changed)
        self.held.acked(changed)
        return len(changed)

    def set_aside(self, items: Sequence[tuple[str, str]]) -> int:
        """Set unsynced messages aside with their reasons; return how many changed."""
        with transaction(self.conn):
            cur = self.conn.executemany(
                "UPDATE messages SET synced = 2, set_aside_reason = ?"
                " WHERE msg_id = ? AND synced = 0",
                [(cut(reason), msg_id) for msg_id, reason in items],
            )
        if cur.rowcount:
            logger.error("agent %s: %d messages set aside", self.agent_id, cur.rowcount)
        return cur.rowcount

    def retry_set_aside(self) -> int:
        """Make every set-aside message unsynced again; return how many."""
        with transaction(self.conn):
            cur = self.conn.execute(
                "UPDATE messages SET synced = 0, set_aside_reason = NULL WHERE synced = 2"
            )
        return cur.rowcount

    def set_aside_reasons(self, limit: int = SHOW_SET_ASIDE) -> list[tuple[str, str]]:
        """The newest set-aside messages and why, for the status page."""
        rows = self.conn.execute(
            "SELECT msg_id, set_aside_reason FROM messages"
            " WHERE synced = 2 ORDER BY timestamp DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [(str(m), str(r)) for m, r in rows]

    def _foreign_ids(self, envelopes: Sequence[MessageEnvelope]) -> list[WriteResult]:
        """Each msg_id, or InvalidMessage where the row under it is another agent's."""
        ids = [env.msg_id for env in envelopes]
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            f"SELECT msg_id, agent_id FROM messages WHERE msg_id IN ({marks})", ids
        )
        held = dict(rows.fetchall())
        return [
            env.msg_id
            if held.get(env.msg_id) in (None, env.agent_id)
            else InvalidMessage("msg_id", f"{env.msg_id!r} holds another agent's message here")
            for env in envelopes
        ]

    def _refuse(self, env: MessageEnvelope, detail: str) -> CacheFull:
        self.full = True
        self.refused_writes += 1
        return CacheFull(env.agent_id or self.agent_id, self.max_bytes, detail)

    def _row(self, env: MessageEnvelope, synced: int) -> tuple[Any, ...]:
        blob = encode_content(env.content) if self.compression else orjson.dumps(env.content)
        return (
            env.msg_id,
            env.timestamp,
            env.task_id,
            env.sender,
            env.recipient,
            env.role,
            blob,
            synced,
            env.priority,
            env.node_id,
            env.agent_id,
        )

    # --- space --------------------------------------------------------------

    def bytes_used(self) -> int:
        """Bytes in pages that hold data (free pages are reused before the file grows)."""
        pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self.page_size

    def _make_room(self, need: int) -> bool:
        """Evict the oldest synced messages until `need` more bytes fit; False if they cannot."""
        # Reading the page counts costs two queries; between reads, count what we add, and
        # re-read when near the limit or every REFRESH_EVERY writes (page splits add slack).
        self._writes_since_refresh += 1
        if (
            self._used + need <= self.max_bytes * NEAR_LIMIT
            and self._writes_since_refresh < REFRESH_EVERY
        ):
            self._used += need
            return True
        self._refresh_used()
        while self._used + need > self.max_bytes:
            if self.evict_synced(EVICT_CHUNK) == 0:
                return False
            self._refresh_used()
        self._used += need
        return True

    def _refresh_used(self) -> None:
        self._used = self.bytes_used()
        self._writes_since_refresh = 0

    def evict_synced(self, count: int) -> int:
        """Delete up to `count` of the oldest synced messages; never an unsynced one."""
        with transaction(self.conn):
            gone = self.conn.execute(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                " WHERE synced = 1 ORDER BY timestamp LIMIT ?) RETURNING timestamp",
                (count,),
            ).fetchall()
            through = max((ts for (ts,) in gone), default=None)
            if through is not None:
                self.held.save_evicted(through)
        if through is not None:
            self.held.evicted(through)
        return len(gone)

    def apply_retention(self) -> int:
        """Delete synced messages older than retention_days; return how many."""
        cutoff = self.clock() - self.retention_seconds
        with transaction(self.conn):
            cur = self.conn.execute(
                "DELETE FROM messages WHERE synced = 1 AND timestamp < ?", (cutoff,)
            )
            self.held.prune(cutoff)
            self.held.save_evicted(cutoff)
        self.held.evicted(cutoff)
        return cur.rowcount

    # --- refill -------------------------------------------------------------

    def envelopes(self, msg_ids: Sequence[str]) -> list[MessageEnvelope]:
        """The messages held under these msg_ids (the others are skipped)."""
        rows: list[tuple[Any, ...]] = []
        for marks, chunk in in_chunks(msg_ids):
            sql = f"SELECT {COLUMNS} FROM messages WHERE msg_id IN ({marks})"
            rows += self.conn.execute(sql, chunk).fetchall()
        return self._decode(rows)

    # --- reads --------------------------------------------------------------

    def get(self, msg_id: str) -> MessageEnvelope | None:
        """Return one message by msg_id, or None."""
        row = self.conn.execute(
            f"SELECT {COLUMNS} FROM messages WHERE msg_id = ?", (msg_id,)
        ).fetchone()
        return None if row is None else next(iter(self._decode([row])), None)

    def query(self, q: Query) -> list[MessageEnvelope]:
        """Return messages matching every filter in `q`, oldest first.

        At most `q.limit` messages and about QUERY_BYTES of content: a caller that gets
        fewer than it asked for continues with `since` at the last timestamp.
        """
        where, args = filter_terms(
            (("task_id", q.task_id), ("sender", q.sender), ("recipient", q.recipient)),
            since=q.since,
        )
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {COLUMNS} FROM messages {clause} ORDER BY timestamp, id LIMIT ?"
        cursor = self.conn.execute(sql, [*args, max(0, min(q.limit, 10_000))])
        rows: list[tuple[Any, ...]] = []
        size = 0
        for row in cursor:
            rows.append(row)
            size += _content_size(row[7])
            if size >= QUERY_BYTES:
                break
        cursor.close()
        return self._decode(rows)

    def list_unsynced(self, limit: int, after_id: int = 0) -> list[UnsyncedRow]:
        """Return sendable unsynced messages in write order, after a local row id.

        A row that cannot be decoded or sent is set aside here, so the outbox never sees it.
        """
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM messages WHERE synced = 0 AND id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        found: list[UnsyncedRow] = []
        poison: list[tuple[str, str]] = []
        for row in rows:
            env, reason = _decode_row(row)
            if env is not None:
                reason = poison_reason(env)
            if env is not None and reason is None:
                found.append(UnsyncedRow(row[0], env))
            else:
                poison.append((str(row[1]), reason or "undecodable"))
        if poison:
            self.set_aside(poison)
        return found

    def _decode(self, rows: Sequence[tuple[Any, ...]]) -> list[MessageEnvelope]:
        """Envelopes of the rows that decode; the others are skipped, and set aside if unsynced."""
        found: list[MessageEnvelope] = []
        poison: list[tuple[str, str]] = []
        for row in rows:
            env, reason = _decode_row(row)
            if env is not None:
                found.append(env)
            else:
                poison.append((str(row[1]), reason or "undecodable"))
        if poison:
            logger.warning("agent %s: %d stored rows cannot be read", self.agent_id, len(poison))
            self.set_aside(poison)
        return found

    def stats(self) -> CacheStats:
        """Return counts, bytes and the oldest unsynced timestamp."""
        total, unsynced, aside, oldest = self.conn.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE synced = 0),"
            " COUNT(*) FILTER (WHERE synced = 2),"
            " (SELECT MIN(timestamp) FROM messages WHERE synced = 0) FROM messages"
        ).fetchone()
        return CacheStats(
            agent_id=self.agent_id,
            bytes_used=self.bytes_used(),
            max_bytes=self.max_bytes,
            message_count=int(total),
            unsynced_count=int(unsynced),
            oldest_unsynced_ts=oldest,
            full=self.full,
            refused_writes=self.refused_writes,
            set_aside_count=int(aside),
            set_aside_recent=tuple(self.set_aside_reasons()) if aside else (),
        )


def _content_size(blob: bytes) -> int:
    """The content's JSON size: gzip records it (mod 2**32) in its last four bytes."""
    if blob[:2] == GZIP_MAGIC and len(blob) >= 18:
        return int.from_bytes(blob[-4:], "little")
    return len(blob)


def _decode_row(row: tuple[Any, ...]) -> tuple[MessageEnvelope | None, str | None]:
    """The row's envelope, or None and why it cannot be read."""
    try:
        return _envelope(row), None
    except Exception as exc:  # whatever a stored row holds, reading it must not crash the actor
        return None, cut(f"stored row cannot be decoded: {type(exc).__name__}: {exc}")


def _envelope(row: tuple[Any, ...]) -> MessageEnvelope:
    blob = row[7]
    content = decode_content(blob) if blob[:2] == GZIP_MAGIC else orjson.loads(blob)
    return MessageEnvelope(
        msg_id=row[1],
        timestamp=row[2],
        task_id=row[3],
        sender=row[4],
        recipient=row[5],
        role=row[6],
        content=content,
        priority=row[8],
        node_id=row[9],
        agent_id=row[10],
    )
