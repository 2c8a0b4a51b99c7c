"""The archive's tables on SQLite: the manifest, archived ids, restored rows, and the moves.

Reads run on the store's read pool (`SqliteArchive`); `ArchiveMove`, `ArchiveRestore` and
`ReclaimSpace` are applied inside the writer's transaction like any other op.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import orjson

from relay_app.store_archive import (
    ArchiveMove,
    ArchiveOp,
    ArchiveRestore,
    Candidate,
    Manifest,
    MergeIndex,
    MoveRaced,
    ReclaimSpace,
    SegmentRecord,
    use_word_classifier,
)
from relay_app.store_inbox import RecordAudit
from relay_app.store_search import searchable
from relay_app.stores import sqlite_actions, sqlite_fts
from relay_app.stores.sqlite_pool import ReadPool
from relay_app.stores.sqlite_rows import CONTENT_INDEX, MESSAGE_COLUMNS, content_json, message_dict
from runtime.core.envelope import encode_json

SEGMENT_COLUMNS = "id, name, rows, size, msg_ids_sha256, min_ts, max_ts, frame_index, created_at"
GENERATION = "SELECT value FROM inbox_state WHERE key = 'archive_generation'"
BUMP_GENERATION = "UPDATE inbox_state SET value = value + 1 WHERE key = 'archive_generation'"
IN_CHUNK = 500
RESTORE_MESSAGE = (
    "INSERT INTO messages (id, msg_id, timestamp, task_id, sender, recipient, role, content,"
    " node_id, agent_id, priority, status, received_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,'acknowledged',?)"
)


class SqliteArchive:
    """`ArchiveStore` on the read pool."""

    def __init__(self, pool: ReadPool) -> None:
        """Read through `pool`; archived text is cut into words as messages_fts cuts it."""
        self._pool = pool
        use_word_classifier(classify_chars)

    def candidates(
        self, aged_before: float | None, limit: int, max_bytes: int = 2**62
    ) -> list[Candidate]:
        """Archived messages by report time, then those received before `aged_before`;
        read one at a time and cut once their content passes `max_bytes`."""
        found: list[Candidate] = []
        size = 0
        with self._pool.read() as conn:
            archived = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE status = 'archived'"
                " ORDER BY timestamp, id LIMIT ?",
                (limit,),
            )
            aged = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE received_at < ?"
                " AND status != 'archived'"
                " AND msg_id NOT IN (SELECT msg_id FROM archive_hidden)"
                " ORDER BY id LIMIT ?",
                (aged_before, limit),
            ) if aged_before is not None else iter(())  # fmt: skip
            for row in itertools.chain(archived, aged):
                if len(found) == limit or (found and size >= max_bytes):
                    break
                raw = content_json(row[CONTENT_INDEX])
                size += len(raw)
                found.append(_candidate(row, raw))
        return found

    def generation(self) -> int:
        """The manifest's change counter."""
        with self._pool.read() as conn:
            return int(conn.execute(GENERATION).fetchone()[0])

    def manifest(self, index_after: int = 0) -> Manifest:
        """Every segment and every hidden row, as of one read (indexes past `index_after`)."""
        columns = SEGMENT_COLUMNS.replace(
            "frame_index", "CASE WHEN id > ? THEN frame_index ELSE x'' END"
        )
        with self._pool.read() as conn:
            generation = int(conn.execute(GENERATION).fetchone()[0])
            segments = conn.execute(
                f"SELECT {columns} FROM archive_segments ORDER BY id", (index_after,)
            ).fetchall()
            hidden = conn.execute("SELECT segment_id, msg_id FROM archive_hidden").fetchall()
        return Manifest(
            generation,
            tuple(_segment(row) for row in segments),
            frozenset((int(s), str(m)) for s, m in hidden),
        )

    def frame_index(self, segment_id: int) -> bytes | None:
        """One segment's index blob."""
        with self._pool.read() as conn:
            found = conn.execute(
                "SELECT frame_index FROM archive_segments WHERE id = ?", (segment_id,)
            ).fetchone()
        return None if found is None else bytes(found[0])

    def locate(self, msg_ids: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        """msg_id -> (segment id, frame) of the archived ones."""
        found: dict[str, tuple[int, int]] = {}
        with self._pool.read() as conn:
            for i in range(0, len(msg_ids), IN_CHUNK):
                chunk = msg_ids[i : i + IN_CHUNK]
                rows = conn.execute(
                    "SELECT msg_id, segment_id, frame FROM archived_ids"
                    f" WHERE msg_id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update((m, (int(s), int(f))) for m, s, f in rows)
        return found

    def free_pages(self) -> int:
        """Pages on the hot file's free list."""
        with self._pool.read() as conn:
            return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


# As sqlite_schema creates messages_fts (tests/relay_app/archive/test_tokens.py checks).
FTS_TOKENIZER = "unicode61 remove_diacritics 2"
_tokenizer_lock = threading.Lock()
_tokenizer: list[sqlite3.Connection] = []


def classify_chars(chars: Sequence[str]) -> list[str | None]:
    """How FTS5 with messages_fts's tokenizer cuts each character between two letters:
    inside one word, folded to what, or between two (None)."""
    with _tokenizer_lock:
        if not _tokenizer:
            conn = sqlite3.connect(":memory:", check_same_thread=False)
            conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize='{FTS_TOKENIZER}')")
            conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
            _tokenizer.append(conn)
        conn = _tokenizer[0]
        conn.execute("DELETE FROM t")
        conn.executemany(
            "INSERT INTO t (rowid, body) VALUES (?, ?)",
            [(i, f"a{c}b") for i, c in enumerate(chars)],
        )
        terms: dict[int, list[str]] = {}
        for doc, term in conn.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
            terms.setdefault(int(doc), []).append(str(term))
    out: list[str | None] = []
    for i in range(len(chars)):
        found = terms.get(i, [])
        whole = len(found) == 1 and found[0][:1] == "a" and found[0][-1:] == "b"
        out.append(found[0][1:-1] if whole else None)
    return out


def _segment(row: Any) -> SegmentRecord:
    seg_id, name, rows, size, digest, min_ts, max_ts, index, created_at = row
    return SegmentRecord(seg_id, name, rows, size, digest, min_ts, max_ts, bytes(index), created_at)


def _candidate(row: Any, raw: bytes) -> Candidate:
    message = message_dict(row, raw)
    message["id"] = int(row[0])
    return Candidate(message, searchable(row[10]))


def apply(conn: sqlite3.Connection, op: ArchiveOp) -> int:
    """Apply one of the archive's ops; return the rows it moved, restored or freed."""
    if isinstance(op, ArchiveMove):
        return apply_move(conn, op)
    if isinstance(op, ArchiveRestore):
        return apply_restore(conn, op)
    if isinstance(op, MergeIndex):
        return merge_index(conn, op)
    return reclaim(conn, op)


def apply_move(conn: sqlite3.Connection, op: ArchiveMove) -> int:
    """Record the segment, place its ids, take its rows out of the index and the table."""
    s = op.segment
    cursor = conn.execute(
        "INSERT INTO archive_segments (name, rows, size, msg_ids_sha256, min_ts, max_ts,"
        " frame_index, created_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
        (s.name, s.rows, s.size, s.msg_ids_sha256, s.min_ts, s.max_ts, s.index, s.created_at),
    )
    segment_id = int(cursor.fetchone()[0])
    conn.executemany(
        "INSERT INTO archived_ids (msg_id, segment_id, frame, node_id, agent_id, timestamp)"
        " VALUES (?,?,?,?,?,?)",
        [(m, segment_id, f, n, a, t) for m, f, n, a, t in op.placed],
    )
    mark = sqlite_fts.indexed_up_to(conn)
    conn.executemany(
        "INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', ?, ?)",
        [(row_id, text) for row_id, text in op.texts if row_id <= mark],
    )
    deleted = conn.executemany("DELETE FROM messages WHERE id = ? AND status = ?", op.moved)
    if deleted.rowcount != len(op.moved):
        raise MoveRaced(f"{len(op.moved) - deleted.rowcount} rows changed since they were read")
    conn.execute(BUMP_GENERATION)
    return len(op.moved)


def apply_restore(conn: sqlite3.Connection, op: ArchiveRestore) -> int:
    """Put each row back as acknowledged (indexed again), hidden in its segment."""
    mark = sqlite_fts.indexed_up_to(conn)
    restored: list[str] = []
    for segment_id, candidate in op.rows:
        m = candidate.message
        gone = conn.execute(
            "DELETE FROM archived_ids WHERE msg_id = ? AND segment_id = ?",
            (m["msg_id"], segment_id),
        )
        if gone.rowcount == 0:
            continue  # restored already, by an op that overtook this one
        blob = encode_json(orjson.dumps(m["content"]))
        conn.execute(RESTORE_MESSAGE, (m["id"], m["msg_id"], m["timestamp"], m["task_id"],
                     m["sender"], m["recipient"], m["role"], blob, m["node_id"], m["agent_id"],
                     m["priority"], m["received_at"]))  # fmt: skip
        conn.execute(
            "INSERT OR IGNORE INTO archive_hidden (segment_id, msg_id) VALUES (?,?)",
            (segment_id, m["msg_id"]),
        )
        if m["id"] <= mark:
            conn.execute(sqlite_fts.INSERT_ENTRY, (m["id"], candidate.text))
        restored.append(m["msg_id"])
    if op.audit is not None and restored:
        sqlite_actions.record_audit(conn, RecordAudit(op.audit, tuple((r, None) for r in restored)))
    conn.execute(BUMP_GENERATION)
    return len(restored)


def merge_index(conn: sqlite3.Connection, op: MergeIndex) -> int:
    """Merge `messages_fts` a bounded step: a contentless FTS5 index keeps what a 'delete'
    took out until its segments are merged, and searches of the hot rows read it all."""
    before = conn.total_changes
    conn.execute(
        "INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', ?)", (-abs(op.pages),)
    )
    # FTS5 says a merge that found nothing to do changes fewer than two rows.
    return int(conn.total_changes - before >= 2)


def reclaim(conn: sqlite3.Connection, op: ReclaimSpace) -> int:
    """Give free pages back to the file system when the file is in incremental mode."""
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
        return 0
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    pages = min(free, op.pages)
    # Python's sqlite3 steps a PRAGMA without result columns once, and a step frees a page.
    for _ in range(pages):
        conn.execute("PRAGMA incremental_vacuum(1)")
    return free - int(conn.execute("PRAGMA freelist_count").fetchone()[0])
