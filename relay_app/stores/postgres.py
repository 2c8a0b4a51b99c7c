"""The cluster store on PostgreSQL (issue 15): so far its schema and its writer.

`PostgresWriter` implements `StoreWriter` for messages, status reports and files with
the semantics of `SqliteWriter`: the same results and the same errors for the same ops.
Several relays may write at once: messages and batches go in with
`INSERT ... ON CONFLICT DO NOTHING RETURNING`, so msg_id alone decides, in the database,
which relay stored a message; nothing is read first and then inserted.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from relay_app.errors import BadRequest, Conflict, StorageFull, StoreUnavailable
from relay_app.store import (
    BROKEN_RULE,
    MessageRow,
    StoreFile,
    StoreMessages,
    StoreStatus,
    WriteOp,
    WriteResult,
)
from relay_app.store_search import searchable
from relay_app.stores.postgres_schema import migrate

# One statement for all the rows of a request, in msg_id order: writers sharing msg_ids
# then take their row locks in one order and cannot deadlock each other (ids follow
# msg_id order, which for time-ordered msg_ids is the order they were made). A msg_id
# already stored, or given twice in the request, is skipped; RETURNING names those stored.
INSERT_MESSAGES = """
INSERT INTO messages (msg_id, timestamp, task_id, sender, recipient, role, content,
    node_id, agent_id, priority, received_at, search)
SELECT m.msg_id, m.ts, m.task_id, m.sender, m.recipient, m.role, m.content,
    m.node_id, m.agent_id, m.priority, %s, to_tsvector('simple', m.body)
FROM unnest(%s::text[], %s::float8[], %s::text[], %s::text[], %s::text[], %s::text[],
    %s::bytea[], %s::text[], %s::text[], %s::text[], %s::text[])
    WITH ORDINALITY AS m(msg_id, ts, task_id, sender, recipient, role, content,
        node_id, agent_id, priority, body, n)
ORDER BY m.msg_id, m.n
ON CONFLICT (msg_id) DO NOTHING
RETURNING msg_id
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
HOLDERS = "SELECT msg_id, node_id, agent_id FROM messages WHERE msg_id = ANY(%s)"
# A write that lost a deadlock (a group of several requests whose msg_ids interleave
# with another writer's group) is rolled back whole and run again: every op in it is
# idempotent.
DEADLOCK_ATTEMPTS = 5


def search_text(blob: bytes) -> str:
    """A stored content's text for `messages.search`: what SQLite's index gets
    (`relay_app.store_search.searchable`), folded here as FTS5's tokenizer folds it.

    Lower case and diacritics are folded in Python, not by the database, so the index does
    not depend on the database's locale (in the C locale PostgreSQL lowercases ASCII
    only); a query must be folded the same way. NULs go: PostgreSQL text cannot hold them.
    """
    text = searchable(blob).replace("\x00", " ").lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class PostgresWriter:
    """One writing connection; every `write` call is one transaction.

    Ops of the inbox, the full-text indexer and sessions are not implemented yet: they
    raise NotImplementedError, and the transaction they are in is rolled back.
    """

    def __init__(self, dsn: str) -> None:
        """Connect now (in the thread that will write)."""
        self._dsn = dsn
        self._conn = _connect(dsn)

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
        try:
            with self._conn.transaction():
                return [self._apply(op, received_at) for op in ops]
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
        raise NotImplementedError(f"{type(op).__name__} is not implemented on PostgreSQL yet")

    def _store_messages(self, op: StoreMessages, received_at: float) -> WriteResult:
        # msg_id alone decides what is already stored, under a known batch_id too, so a
        # reused or regrouped batch_id never drops a message (as on SQLite).
        inserted = 0
        if op.rows:
            params = [received_at, *_columns(op.rows)]
            inserted = len(self._conn.execute(INSERT_MESSAGES, params).fetchall())
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
    """The store on one PostgreSQL database: migrations and the writer only, so far.

    It is not yet a `MessageStore`: the reads (node API, inbox, sessions, figures) and
    `on_stored` come with the next slices of issue 15, and are absent rather than stubbed.
    """

    def __init__(self, dsn: str) -> None:
        """Create or migrate the schema now, so a broken database fails at start-up."""
        self.dsn = dsn
        with _connect(dsn) as conn:
            self.migrations_applied = migrate(conn)

    def open_writer(self) -> PostgresWriter:
        """Open the writer connection in the calling thread."""
        return PostgresWriter(self.dsn)

    def close(self) -> None:
        """Nothing to release yet: the store holds no connection between calls."""


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
