"""The full-text index on SQLite: the contentless FTS5 table `messages_fts` (rowid =
messages.id) and its mark `inbox_state.fts_indexed_id`, the last id it holds.

Content is gzip, so no trigger can index it: the inbox's indexer reads `unindexed`
chunks, prepares their text outside the writer (`IndexChunk.entries`) and submits
`IndexEntries`, applied here.
"""

from __future__ import annotations

import sqlite3

from relay_app.store_search import IndexChunk, IndexEntries
from runtime.core import sqlite as rsqlite

FTS_MARK = "SELECT value FROM inbox_state WHERE key = 'fts_indexed_id'"
INSERT_ENTRY = "INSERT INTO messages_fts (rowid, body) VALUES (?, ?)"
# An entry is added only while its message is still hot: a chunk read before a move
# must not leave the index an entry the move could not take out.
INSERT_IF_HOT = (
    "INSERT INTO messages_fts (rowid, body)"
    " SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?1)"
)
MOVE_MARK = "UPDATE inbox_state SET value = ? WHERE key = 'fts_indexed_id'"


def indexed_up_to(conn: sqlite3.Connection) -> int:
    """The last message id the index holds."""
    return int(conn.execute(FTS_MARK).fetchone()[0])


def unindexed(conn: sqlite3.Connection, limit: int) -> IndexChunk | None:
    """The next `limit` messages past the mark, or None when the index has them all."""
    start = indexed_up_to(conn)
    rows = conn.execute(
        "SELECT id, content FROM messages WHERE id > ? ORDER BY id LIMIT ?", (start, limit)
    ).fetchall()
    if not rows:
        return None
    return IndexChunk(after_id=start, contents=tuple((int(i), bytes(c)) for i, c in rows))


def apply(conn: sqlite3.Connection, op: IndexEntries) -> int:
    """Add the entries and move the mark, unless the mark moved since they were read."""
    if indexed_up_to(conn) != op.after_id:
        return 0  # indexed already, by an op that overtook this one
    conn.executemany(INSERT_IF_HOT, op.entries)
    conn.execute(MOVE_MARK, (op.up_to_id,))
    return len(op.entries)


def index_pending(conn: sqlite3.Connection, limit: int) -> int:
    """Index the next chunk directly on a writable `conn` (offline: filling a benchmark
    database without a relay); return how many messages it took."""
    chunk = unindexed(conn, limit)
    if chunk is None:
        return 0
    with rsqlite.transaction(conn):
        return apply(conn, chunk.entries())
