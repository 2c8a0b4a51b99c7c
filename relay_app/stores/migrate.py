"""Move a relay's corpus from its SQLite database to PostgreSQL (issue 15 item 7).

`migrate_corpus` streams each table in primary-key order, `chunk_rows` rows per
transaction on the target, so memory stays bounded and a killed run loses at most the
chunk in flight. Messages keep their ids (a cursor is a row id) and every column; the
search column is computed as `PostgresWriter` computes it. Every insert is
`ON CONFLICT DO NOTHING`, and messages resume after the highest id already in the
target, so running it again, after a kill or after success, converges on the source.
At the end the identity sequence is moved past the highest id and `verify` compares
row counts and a sha256 of all msg_ids in id order, both streamed.

No relay may write to the target before the migration has finished: its inserts would
take ids from 1 on and push aside the source rows holding them (verification says so).
The source may still be live: a second run after the relay stopped copies what came
meanwhile (new ids only; inbox status changes to rows already copied are not followed).

Copied rows get transaction id 0, and `store_meta.mail_offset` becomes the highest id
copied: a node's mail cursor, a SQLite row id, then goes on from the same row on
PostgreSQL, and every row stored later follows all copied rows
(relay_app.stores.postgres_follow). The status counts are recounted at the end.

The source is opened read-only. SQLite's derived tables (the full-text index, its mark,
the counters) are not copied: PostgreSQL derives its own. Any other table is reported.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from relay_app.stores.postgres import search_text
from relay_app.stores.postgres_schema import migrate as migrate_schema
from relay_app.stores.sqlite import DB_RELATIVE_PATH
from runtime.core import sqlite as rsqlite
from runtime.core.errors import CommanderError

CHUNK_ROWS = 2000
COPIED_TABLES = ("messages", "batches", "node_status", "files", "inbox_audit", "inbox_sessions")
MESSAGE_COLUMNS = (
    "id, msg_id, timestamp, task_id, sender, recipient, role, content, synced, node_id,"
    " agent_id, priority, status, received_at"
)
# Every column of a source row, plus its search text, as one array per column.
INSERT_MESSAGES = f"""
INSERT INTO messages ({MESSAGE_COLUMNS}, search, xact)
SELECT m.id, m.msg_id, m.ts, m.task_id, m.sender, m.recipient, m.role, m.content, m.synced,
    m.node_id, m.agent_id, m.priority, m.status, m.received_at, to_tsvector('simple', m.body),
    '0'::xid8
FROM unnest(%s::bigint[], %s::text[], %s::float8[], %s::text[], %s::text[], %s::text[],
    %s::text[], %s::bytea[], %s::integer[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::float8[], %s::text[])
    AS m(id, msg_id, ts, task_id, sender, recipient, role, content, synced, node_id,
        agent_id, priority, status, received_at, body)
ON CONFLICT DO NOTHING
"""
SELECT_MESSAGES = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > ? ORDER BY id"
# The small tables, by primary key: (source SELECT, target INSERT).
OTHER_TABLES: dict[str, tuple[str, str]] = {
    "batches": (
        "SELECT batch_id, node_id, message_count, received_at FROM batches ORDER BY batch_id",
        "INSERT INTO batches (batch_id, node_id, message_count, received_at)"
        " VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    ),
    "node_status": (
        "SELECT node_id, sent_at, received_at, agents FROM node_status ORDER BY node_id",
        "INSERT INTO node_status (node_id, sent_at, received_at, agents)"
        " VALUES (%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    ),
    "files": (
        "SELECT file_id, agent_id, node_id, msg_id, filename, size, sha256, path, received_at"
        " FROM files ORDER BY file_id",
        "INSERT INTO files (file_id, agent_id, node_id, msg_id, filename, size, sha256, path,"
        " received_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    ),
    # Audit entries keep their ids, so a second run knows those it copied.
    "inbox_audit": (
        "SELECT id, msg_id, action, user_name, at, detail FROM inbox_audit ORDER BY id",
        "INSERT INTO inbox_audit (id, msg_id, action, user_name, at, detail)"
        " OVERRIDING SYSTEM VALUE VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    ),
    # Operators stay logged in across the move (tokens are stored hashed).
    "inbox_sessions": (
        "SELECT token_sha256, user_name, csrf, expires, flash FROM inbox_sessions"
        " ORDER BY token_sha256",
        "INSERT INTO inbox_sessions (token_sha256, user_name, csrf, expires, flash)"
        " VALUES (%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    ),
}
# Past the highest ids, so the relays' own inserts never take a copied one; the position
# offset past every copied message; the status counts of the copied rows.
FINISH = (
    "SELECT setval(pg_get_serial_sequence('messages', 'id'), COALESCE(MAX(id), 0) + 1, false)"
    " FROM messages",
    "SELECT setval(pg_get_serial_sequence('inbox_audit', 'id'), COALESCE(MAX(id), 0) + 1,"
    " false) FROM inbox_audit",
    "INSERT INTO store_meta (key, value) SELECT 'mail_offset', COALESCE(MAX(id), 0)"
    " FROM messages WHERE xact = '0' ON CONFLICT (key) DO UPDATE"
    " SET value = GREATEST(store_meta.value, excluded.value)",
    "UPDATE inbox_counts SET n = 0",
    "UPDATE inbox_counts c SET n = (SELECT COUNT(*) FROM messages m WHERE m.status = c.status)"
    " WHERE c.shard = 0",
)
MSG_IDS_IN_ORDER = "SELECT msg_id FROM messages ORDER BY id"
SOURCE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
# SQLite's own tables, and what PostgreSQL derives from the messages instead: the
# full-text index (the search column), its progress mark and the status counters
# (PostgreSQL counts; it keeps no counter rows), and the generation (a new database gets
# its own). Any other table is reported as left.
DERIVED_PREFIXES = ("sqlite_", "messages_fts", "inbox_counts", "inbox_state", "store_meta")
# The archive's tables: a source whose archive holds messages is refused, so they are empty.
ARCHIVE_IDS = "archived_ids"
ARCHIVE_TABLES = ("archive_segments", ARCHIVE_IDS, "archive_hidden")


class MigrateError(CommanderError):
    """The source or the target cannot be used: the text names which and why (exit 2)."""


class MigrateInterrupted(CommanderError):
    """A database failed during the copy; what is committed stays, a new run resumes."""


@dataclass
class Report:
    """What one run copied and found."""

    copied: dict[str, int] = field(default_factory=dict)  # rows inserted by this run
    seconds: float = 0.0
    not_copied: dict[str, int] = field(default_factory=dict)  # table -> source rows
    differences: list[str] = field(default_factory=list)
    msg_ids_sha256: str = ""

    def summary(self) -> str:
        """One line: what was copied, how fast, what was verified and what was left."""
        rate = self.copied.get("messages", 0) / self.seconds if self.seconds else 0.0
        copied = ", ".join(f"{table} {n}" for table, n in self.copied.items())
        left = ", ".join(f"{table} ({n} rows)" for table, n in self.not_copied.items())
        verdict = (
            f"verified: counts equal, msg_ids sha256 {self.msg_ids_sha256[:16]}"
            if not self.differences
            else "DIFFERENT: " + "; ".join(self.differences)
        )
        tail = f"; not copied: {left}" if left else ""
        return f"copied {copied} in {self.seconds:.1f} s ({rate:.0f} messages/s); {verdict}{tail}"


def source_path(given: str | Path) -> Path:
    """The database file: `given` itself, or a relay data directory's database."""
    path = Path(given)
    if path.is_dir():
        path = path / DB_RELATIVE_PATH
    if not path.is_file():
        raise MigrateError(f"--from {given}: no relay database there ({path} is not a file)")
    return path


def open_source(given: str | Path) -> sqlite3.Connection:
    """The relay's SQLite database, read-only; refuse anything that is not one."""
    path = source_path(given)
    try:
        conn = rsqlite.connect(path, read_only=True)
        tables = {row[0] for row in conn.execute(SOURCE_TABLES)}
    except sqlite3.Error as exc:
        raise MigrateError(f"--from {given}: not a readable SQLite database: {exc}") from exc
    missing = [table for table in COPIED_TABLES if table not in tables]
    if missing:
        conn.close()
        raise MigrateError(f"--from {given}: not a relay database (no table {missing[0]})")
    archived = (
        _count(conn.execute("SELECT COUNT(*) FROM archived_ids")) if ARCHIVE_IDS in tables else 0
    )
    if archived:
        conn.close()
        raise MigrateError(
            f"--from {given}: {archived} messages are in archive segments, which the"
            " PostgreSQL store does not read; restore them first (docs/ARCHIVE.md)"
        )
    return conn


def open_target(dsn: str) -> psycopg.Connection[TupleRow]:
    """A connection to the target database, its schema created or brought up to date."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise MigrateError(f"--to: expected a postgresql:// URL, got {dsn!r}")
    try:
        conn = psycopg.connect(dsn, autocommit=True)
        migrate_schema(conn)
    except psycopg.Error as exc:
        raise MigrateError(f"--to: cannot use the database: {exc}") from exc
    return conn


def migrate_corpus(
    source: sqlite3.Connection,
    target: psycopg.Connection[TupleRow],
    *,
    chunk_rows: int = CHUNK_ROWS,
    pause_s: float = 0.0,
) -> Report:
    """Copy every table the target has, move its id sequence on, then verify."""
    report = Report()
    started = time.monotonic()
    try:
        report.copied["messages"] = copy_messages(source, target, chunk_rows, pause_s)
        for table in OTHER_TABLES:
            report.copied[table] = copy_table(source, target, table, chunk_rows)
        with target.transaction():
            for statement in FINISH:
                target.execute(statement)
        report.seconds = time.monotonic() - started
        report.not_copied = tables_not_copied(source)
        report.differences, report.msg_ids_sha256 = verify(source, target)
    except (psycopg.Error, sqlite3.Error) as exc:
        raise MigrateInterrupted(
            f"the copy stopped ({exc}); the chunks committed stay: run it again to resume"
        ) from exc
    return report


def copy_messages(
    source: sqlite3.Connection,
    target: psycopg.Connection[TupleRow],
    chunk_rows: int,
    pause_s: float = 0.0,
) -> int:
    """Copy the messages after the target's highest id, one transaction per chunk."""
    found = target.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()
    after = int(found[0]) if found else 0
    inserted = 0
    for chunk in _chunks(source.execute(SELECT_MESSAGES, (after,)), chunk_rows):
        with target.transaction():
            inserted += target.execute(INSERT_MESSAGES, _message_columns(chunk)).rowcount
        if pause_s:
            time.sleep(pause_s)
    return inserted


def _message_columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """The rows as one array per column, content as bytes, plus each row's search text."""
    columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
    content = columns[7] = [bytes(blob) for blob in columns[7]]
    columns.append([search_text(blob) for blob in content])
    return columns


def copy_table(
    source: sqlite3.Connection, target: psycopg.Connection[TupleRow], table: str, chunk_rows: int
) -> int:
    """Copy one small table in key order, one transaction per chunk; rows present stay."""
    select, insert = OTHER_TABLES[table]
    inserted = 0
    for chunk in _chunks(source.execute(select), chunk_rows):
        with target.transaction(), target.cursor() as cur:
            cur.executemany(insert, chunk)
            inserted += max(cur.rowcount, 0)
    return inserted


def _chunks(cursor: sqlite3.Cursor, size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The cursor's rows, `size` at a time, never more in memory."""
    while chunk := cursor.fetchmany(size):
        yield chunk


def tables_not_copied(source: sqlite3.Connection) -> dict[str, int]:
    """The source's tables the PostgreSQL schema does not have yet, with their row counts."""
    names = [row[0] for row in source.execute(SOURCE_TABLES)]
    left = [n for n in names if n not in (*COPIED_TABLES, *ARCHIVE_TABLES)
            and not n.startswith(DERIVED_PREFIXES)]  # fmt: skip
    return {name: _count(source.execute(f'SELECT COUNT(*) FROM "{name}"')) for name in left}


def verify(
    source: sqlite3.Connection, target: psycopg.Connection[TupleRow]
) -> tuple[list[str], str]:
    """The differences between both corpora (none: equal), and the source's msg_id hash."""
    differences = []
    for table in COPIED_TABLES:
        query = f"SELECT COUNT(*) FROM {table}"
        mine, theirs = _count(source.execute(query)), _count(target.execute(query))
        if mine != theirs:
            differences.append(f"{table}: {mine} rows in the source, {theirs} in the target")
    source_hash = _sha256(row[0] for row in source.execute(MSG_IDS_IN_ORDER))
    with target.transaction(), target.cursor(name="msg_ids") as cur:
        cur.itersize = CHUNK_ROWS
        cur.execute(MSG_IDS_IN_ORDER)
        target_hash = _sha256(row[0] for row in cur)
    if source_hash != target_hash:
        differences.append(
            f"messages: the msg_ids in id order differ (sha256 {source_hash[:16]} in the"
            f" source, {target_hash[:16]} in the target)"
        )
    return differences, source_hash


def _sha256(msg_ids: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for msg_id in msg_ids:
        digest.update(msg_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _count(cursor: sqlite3.Cursor | psycopg.Cursor[TupleRow]) -> int:
    found = cursor.fetchone()
    return int(found[0]) if found else 0
