"""The cluster store on PostgreSQL: one database that several relays share.

`PostgresStore` is the engine's entry point (selected by `relay.store`, a postgresql://
URL) and `PostgresWriter` its `StoreWriter`, with the semantics of their SQLite
namesakes: the same results and the same errors for the same ops. Several relays may
write at once: messages and batches go in with `INSERT ... ON CONFLICT DO NOTHING
RETURNING`, so msg_id alone decides, in the database, which relay stored a message;
nothing is read first and then inserted. The node API's reads are in `postgres_reads`,
the inbox's in `postgres_inbox`, sessions in `postgres_sessions`; incremental reads stop
below a watermark (`postgres_follow`) and news travels by LISTEN/NOTIFY
(`postgres_notify`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from relay_app.errors import BadRequest, Conflict, StorageFull, StoreUnavailable
from relay_app.store import (
    BROKEN_RULE,
    FileRecord,
    MessagePage,
    MessageQuery,
    MessageRow,
    StoredListener,
    StoreFigures,
    StoreFile,
    StoreMessages,
    StoreStatus,
    WriteOp,
    WriteResult,
)
from relay_app.store_archive import ARCHIVE_OPS
from relay_app.store_inbox import RecordAudit, SetStatuses
from relay_app.store_search import IndexEntries, searchable, words
from relay_app.store_sessions import SessionOp
from relay_app.stores import postgres_actions, postgres_reads, postgres_sessions
from relay_app.stores.postgres_follow import SPAN, read_offset
from relay_app.stores.postgres_inbox import PostgresInbox
from relay_app.stores.postgres_notify import CHANNEL, StoredNotifier, recipient_parts
from relay_app.stores.postgres_refill import PostgresRefill
from relay_app.stores.postgres_schema import migrate
from relay_app.stores.postgres_sessions import PostgresSessions

# One statement for all the rows of a request, in the request's order, so ids follow it
# as on SQLite (report-time ties are broken by id). Two relays storing the same msg_ids
# in other orders at once (a node that failed over resending) can deadlock; the loser is
# rolled back and run again (DEADLOCK_ATTEMPTS). A msg_id already stored, or given
# twice in the request, is skipped; RETURNING names those stored.
INSERT_MESSAGES = """
INSERT INTO messages (msg_id, timestamp, task_id, sender, recipient, role, content,
    node_id, agent_id, priority, received_at, search)
SELECT m.msg_id, m.ts, m.task_id, m.sender, m.recipient, m.role, m.content,
    m.node_id, m.agent_id, m.priority, %s, to_tsvector('simple', m.body)
FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::bytea[], %s::text[], %s::text[], %s::text[], %s::text[])
    WITH ORDINALITY AS m(msg_id, ts, task_id, sender, recipient, role, content,
        node_id, agent_id, priority, body, n)
ORDER BY m.n
ON CONFLICT (msg_id) DO NOTHING
RETURNING id, recipient
"""
INSERT_BATCH = (
    "INSERT INTO batches (batch_id, node_id, message_count, received_at) VALUES (%s,%s,%s,%s)"
    " ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id"
)
UPSERT_STATUS = (
    "INSERT INTO node_status (node_id, sent_at, received_at, agents) VALUES (%s,%s,%s,%s)"
    " ON CONFLICT (node_id) DO UPDATE SET sent_at = excluded.sent_at,"
    " received_at = excluded.received_at, agents = excluded.agents"
)
INSERT_FILE = (
    "INSERT INTO files (file_id, agent_id, node_id, msg_id, filename, size, sha256, path,"
    " received_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)
# What a commit that stored messages adds, in one round trip: its first id (positions
# count from it), the new messages on this connection's count shard, and one
# notification per part of its recipient list (JSON arrays made by postgres_notify).
# A data-modifying WITH runs whether or not the SELECT reads it.
ANNOUNCE = """
WITH c AS (INSERT INTO commits (xact, first_id) VALUES (pg_current_xact_id(), %s)),
u AS (UPDATE inbox_counts SET n = n + %s WHERE status = 'unread' AND shard = %s)
SELECT pg_notify(%s, format('{"x":%%s,"r":%%s}', pg_current_xact_id(), part))
FROM unnest(%s::text[]) AS part
"""
# How long a read waits for a pooled connection (all busy, or the server down) before
# it answers 503: a worker thread is held no longer than this.
POOL_WAIT_S = 2.0
HOLDERS = "SELECT msg_id, node_id, agent_id FROM messages WHERE msg_id = ANY(%s)"
# A write that lost a deadlock (a group of several requests whose msg_ids interleave
# with another writer's group) is rolled back whole and run again: every op in it is
# idempotent.
DEADLOCK_ATTEMPTS = 5


def search_text(blob: bytes) -> str:
    """A stored content's text for `messages.search`: what SQLite's index gets
    (`relay_app.store_search.searchable`), cut and folded as FTS5's tokenizer does it.

    Words are the letter-and-digit runs, lower case and without diacritics, joined by
    spaces, so PostgreSQL's parser sees plain words only: left to it, "example.com",
    "3.14" or "e-mail" would be indexed as other lexemes than SQLite's, and its case
    folding would depend on the database's locale. A query is cut the same way.
    """
    return " ".join(words(searchable(blob)))


class PostgresWriter:
    """One writing connection; every `write` call is one transaction."""

    def __init__(self, dsn: str) -> None:
        """Connect now (in the thread that will write)."""
        self._dsn = dsn
        self._conn = _connect(dsn)
        self._news: list[tuple[int, str | None]] = []  # (id, recipient) of rows stored

    def write(self, ops: Sequence[WriteOp], received_at: float) -> list[WriteResult]:
        """Apply every op in one transaction, or none of them."""
        lost: pg_errors.DeadlockDetected | None = None
        for _ in range(DEADLOCK_ATTEMPTS):
            try:
                return self._write_once(ops, received_at)
            except pg_errors.DeadlockDetected as exc:
                lost = exc
        raise StoreUnavailable(f"the cluster database failed: {lost}") from lost

    def _write_once(self, ops: Sequence[WriteOp], received_at: float) -> list[WriteResult]:
        if self._conn.closed or self._conn.broken:
            self._reconnect()
        self._news = []
        try:
            with self._conn.transaction():
                results = [self._apply(op, received_at) for op in ops]
                self._announce()
                return results
        except pg_errors.DeadlockDetected:
            raise
        except pg_errors.DiskFull as exc:
            raise StorageFull("the cluster database is full (disk); nothing was stored") from exc
        except pg_errors.CheckViolation as exc:
            raise BadRequest(f"{BROKEN_RULE}: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the cluster database failed: {exc}") from exc

    def _reconnect(self) -> None:
        """A new connection after the last one broke (a server restart, a network cut)."""
        self._conn.close()
        try:
            self._conn = _connect(self._dsn)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the cluster database is unreachable: {exc}") from exc

    def _apply(self, op: WriteOp, received_at: float) -> WriteResult:
        if isinstance(op, StoreMessages):
            return self._store_messages(op, received_at)
        if isinstance(op, StoreStatus):
            agents_json = orjson.dumps(list(op.agents)).decode()
            self._conn.execute(UPSERT_STATUS, (op.node_id, op.sent_at, received_at, agents_json))
            return WriteResult(inserted=1)
        if isinstance(op, StoreFile):
            r = op.record
            self._conn.execute(
                INSERT_FILE,
                (r.file_id, r.agent_id, r.node_id, r.msg_id, r.filename, r.size, r.sha256,
                 r.path, received_at),
            )  # fmt: skip
            return WriteResult(inserted=1)
        if isinstance(op, ARCHIVE_OPS):
            raise StoreUnavailable("archiving is not built for the PostgreSQL store")
        return WriteResult(inserted=_apply_elsewhere(self._conn, op))

    def _announce(self) -> None:
        """Record the commit's first id, count the new messages, queue its news."""
        if not self._news:
            return
        first, last = min(i for i, _ in self._news), max(i for i, _ in self._news)
        if last - first >= SPAN - 2:  # positions of this commit's rows would collide
            raise StoreUnavailable("one transaction's message ids span too far; retry smaller")
        recipients = {recipient for _, recipient in self._news if recipient}
        shard = postgres_actions.count_shard(self._conn)
        parts = recipient_parts(recipients)
        self._conn.execute(ANNOUNCE, (first, len(self._news), shard, CHANNEL, parts))

    def _store_messages(self, op: StoreMessages, received_at: float) -> WriteResult:
        # msg_id alone decides what is already stored, under a known batch_id too, so a
        # reused or regrouped batch_id never drops a message (as on SQLite).
        inserted = 0
        if op.rows:
            params = [received_at, *_columns(op.rows)]
            stored = self._conn.execute(INSERT_MESSAGES, params).fetchall()
            self._news += stored
            inserted = len(stored)
        if inserted < len(op.rows):
            self._refuse_foreign_ids(op.rows)
        if op.batch_id is None:
            return WriteResult(inserted=inserted)
        recorded = self._conn.execute(
            INSERT_BATCH, (op.batch_id, op.node_id, len(op.rows), received_at)
        ).fetchone()
        return WriteResult(inserted=inserted, repeated=recorded is None)

    def _refuse_foreign_ids(self, rows: Sequence[MessageRow]) -> None:
        """409 when a skipped row's msg_id is stored for another (node, agent).

        A repeat is acked; a msg_id held by someone else is not. The check runs after the
        insert, so a row another writer committed meanwhile is seen (READ COMMITTED).
        """
        wanted: dict[str, tuple[str, str]] = {}
        for row in rows:
            if wanted.setdefault(row.msg_id, (row.node_id, row.agent_id)) != (
                row.node_id,
                row.agent_id,
            ):
                raise Conflict(f"msg_id {row.msg_id!r} is given to two agents in one request")
        for msg_id, node_id, agent_id in self._conn.execute(HOLDERS, (list(wanted),)):
            if wanted[msg_id] != (node_id, agent_id):
                raise Conflict(f"msg_id {msg_id!r} is already stored for another agent")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class PostgresStore:
    """`MessageStore` on one PostgreSQL database, shared by every relay that opens it."""

    def __init__(self, dsn: str, *, pool_size: int = 8) -> None:
        """Create or migrate the schema now, so a broken database fails at start-up."""
        self.dsn = dsn
        try:
            with _connect(dsn) as conn:
                self.migrations_applied = migrate(conn)
                self._offset = read_offset(conn)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"the cluster database is unreachable: {exc}") from exc
        # Readers check a connection before use, so a server restart costs one reconnect,
        # not an error for each pooled connection it broke.
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True},
            check=ConnectionPool.check_connection,
            timeout=POOL_WAIT_S,
            name="commander-readers",
            open=True,
        )
        self._notifier = StoredNotifier(lambda: _connect(dsn))
        self.inbox = PostgresInbox(self._pool, self._offset)
        self.sessions = PostgresSessions(self._pool)
        # Archiving is built for SQLite only: on PostgreSQL every message stays hot.
        self.archive = None
        self.refill = PostgresRefill(self._read)

    def open_writer(self) -> PostgresWriter:
        """Open the writer connection in the calling thread."""
        return PostgresWriter(self.dsn)

    def on_stored(self, listener: StoredListener) -> None:
        """Call `listener` after any relay's commit of new messages, once they are visible."""
        self._notifier.add(listener)

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[TupleRow]]:
        """A pooled connection; a database failure becomes StoreUnavailable (503)."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:  # PoolTimeout too: all busy, or the server down
            raise StoreUnavailable(f"the cluster database failed the read: {exc}") from exc

    def query_messages(self, query: MessageQuery) -> MessagePage:
        """One page of messages in (timestamp, id) order, and the total (as on SQLite)."""
        with self._read() as conn:
            return postgres_reads.query_messages(conn, query)

    def get_message(self, msg_id: str) -> dict[str, Any] | None:
        """One message, or None."""
        with self._read() as conn:
            return postgres_reads.get_message(conn, msg_id)

    def mail_after(
        self, recipients: Sequence[str], after_id: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Mail to `recipients` past the position `after_id`, below the watermark."""
        with self._read() as conn:
            return postgres_reads.mail_after(conn, recipients, after_id, limit, self._offset)

    def node_statuses(self) -> list[dict[str, Any]]:
        """Every node's last report, by node id."""
        with self._read() as conn:
            return postgres_reads.node_statuses(conn)

    def get_file(self, file_id: str) -> FileRecord | None:
        """A file's metadata, or None."""
        with self._read() as conn:
            return postgres_reads.get_file(conn, file_id)

    def figures(self) -> StoreFigures:
        """Messages ever stored (the highest id), the database's size, the last reports."""
        with self._read() as conn:
            found = conn.execute(
                "SELECT COALESCE(MAX(id), 0), pg_database_size(current_database()) FROM messages"
            ).fetchone()
            reports = conn.execute("SELECT node_id, received_at FROM node_status").fetchall()
        stored, size = (int(found[0]), int(found[1])) if found else (0, 0)
        return StoreFigures(stored, size, {str(n): float(r) for n, r in reports})

    def close(self) -> None:
        """Stop listening and close the readers (the writer is closed by its owner)."""
        self._notifier.stop()
        self._pool.close()


def _apply_elsewhere(
    conn: psycopg.Connection[TupleRow], op: SetStatuses | RecordAudit | IndexEntries | SessionOp
) -> int:
    """Hand an op to the module owning its tables; return the rows it changed."""
    if isinstance(op, SetStatuses):
        return postgres_actions.set_statuses(conn, op)
    if isinstance(op, RecordAudit):
        return postgres_actions.record_audit(conn, op)
    if isinstance(op, IndexEntries):
        return 0  # the search column is filled at insert: nothing to index
    return postgres_sessions.apply(conn, op)


def _connect(dsn: str) -> psycopg.Connection[TupleRow]:
    """A connection in autocommit mode: every transaction is an explicit block.

    synchronous_commit is left as the server has it (on by default): an ack promises
    the messages are durable, and an operator's stronger setting (remote_apply) stays.
    """
    return psycopg.connect(dsn, autocommit=True)


def _columns(rows: Sequence[MessageRow]) -> list[list[Any]]:
    """The rows as one array per column, for INSERT_MESSAGES's unnest, plus their text."""
    columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
    columns.append([search_text(row.content) for row in rows])
    return columns
