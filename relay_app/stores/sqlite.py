"""The cluster store on SQLite: one writer connection, one pool of read-only readers (WAL).

`SqliteStore` is the engine's one entry point. The node API's reads and the writer of
messages, status reports and files live here; the inbox's reads, its writes, the
full-text index and sessions each live in the module named for them, beside this one.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from relay_app.errors import BadRequest, Conflict, StorageFull, StoreUnavailable
from relay_app.store import (
    BROKEN_RULE,
    FILTER_FIELDS,
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
from relay_app.store_archive import ARCHIVE_OPS, ArchiveOp
from relay_app.store_inbox import RecordAudit, SetStatuses
from relay_app.store_search import IndexEntries
from relay_app.store_sessions import SessionOp
from relay_app.stores import sqlite_actions, sqlite_archive, sqlite_fts, sqlite_sessions
from relay_app.stores.sqlite_archive import SqliteArchive
from relay_app.stores.sqlite_digests import KeptDigests
from relay_app.stores.sqlite_inbox import SqliteInbox
from relay_app.stores.sqlite_pool import ReadPool
from relay_app.stores.sqlite_refill import LAST_ID, SqliteRefill
from relay_app.stores.sqlite_rows import (
    FILE_COLUMNS,
    MESSAGE_COLUMNS,
    agents,
    bounded_page,
    message_dict,
)
from relay_app.stores.sqlite_schema import MIGRATIONS
from relay_app.stores.sqlite_sessions import SqliteSessions
from runtime.core import sqlite as rsqlite

logger = logging.getLogger(__name__)

DB_RELATIVE_PATH = Path("messages") / "cluster_messages.db"

# ON CONFLICT names the one conflict that means "already stored": a row failing any other
# rule (a CHECK) is an error, never silently skipped and acknowledged.
INSERT_MESSAGE = (
    "INSERT INTO messages (msg_id, timestamp, task_id, sender, recipient, role,"
    " content, node_id, agent_id, priority, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (msg_id) DO NOTHING"
)
UPSERT_STATUS = (
    "INSERT INTO node_status (node_id, sent_at, received_at, agents) VALUES (?,?,?,?)"
    " ON CONFLICT (node_id) DO UPDATE SET sent_at = excluded.sent_at,"
    " received_at = excluded.received_at, agents = excluded.agents"
)
INSERT_FILE = (
    "INSERT INTO files (file_id, agent_id, node_id, msg_id, filename, size, sha256, path,"
    " received_at) VALUES (?,?,?,?,?,?,?,?,?)"
)
# What a commit stored, for the kept refill digests: the rows past the highest id before it
# (a row restored from the archive keeps its own lower id, and counted already).
STORED_SINCE = (
    "SELECT id, agent_id, node_id, timestamp, msg_id FROM messages WHERE id > ? ORDER BY id"
)
_FILTER_COLUMNS = frozenset(FILTER_FIELDS.values())
# Bound on the ids in one IN (...) list (SQLite's limit on bound parameters is far higher).
IN_CHUNK = 500


class SqliteWriter:
    """The one writing connection; every `write` call is one transaction."""

    def __init__(
        self,
        path: Path,
        synchronous: str,
        max_page_count: int | None,
        listeners: Sequence[StoredListener] = (),
        kept: KeptDigests | None = None,
    ) -> None:
        """Open the connection; `max_page_count` caps the file size (tests of a full disk)."""
        self._conn = rsqlite.connect(path, synchronous=synchronous)
        if max_page_count is not None:
            self._conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
        self._listeners = listeners
        self._kept = kept or KeptDigests()

    def write(self, ops: Sequence[WriteOp], received_at: float) -> list[WriteResult]:
        """Apply every op in one transaction, or none of them; then tell the listeners."""
        conn = self._conn
        # Read whether or not digests are kept yet: a first digests request may start
        # keeping them while this transaction is open, and must then hear of its rows.
        stores = any(isinstance(op, StoreMessages) for op in ops)
        last_id = self._last_id() if stores else None
        try:
            with rsqlite.transaction(conn):
                results = [self._apply(op, received_at) for op in ops]
        except sqlite3.Error as exc:
            # COMMIT itself can fail (the WAL cannot grow) and leave the transaction open.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if rsqlite.is_disk_full(exc):
                raise StorageFull(
                    "the cluster database is full (disk or page limit); nothing was stored"
                ) from exc
            raise StoreUnavailable(f"the cluster database failed: {exc}") from exc
        if last_id is not None and self._kept.active:
            self._keep_digests(last_id)
        self._tell(ops, results)
        return results

    def _last_id(self) -> int:
        row = self._conn.execute(LAST_ID).fetchone()
        return int(row[0]) if row else 0

    def _keep_digests(self, last_id: int) -> None:
        """Tell the kept digests the messages this commit stored (ids past `last_id`)."""
        try:
            rows = self._conn.execute(STORED_SINCE, (last_id,)).fetchall()
            self._kept.stored(rows)
        except Exception:  # the digests are a cache: a failure here must not fail the write
            logger.exception("the kept refill digests could not follow a commit; dropped")
            self._kept.forget()

    def _tell(self, ops: Sequence[WriteOp], results: Sequence[WriteResult]) -> None:
        """Call the listeners once for the commit, if it stored new messages."""
        stored = [op for op, r in zip(ops, results, strict=True)
                  if isinstance(op, StoreMessages) and r.inserted]  # fmt: skip
        if not stored:
            return
        recipients = frozenset(row.recipient for op in stored for row in op.rows if row.recipient)
        for listener in self._listeners:
            try:
                listener(recipients)
            except Exception:  # a listener's bug must not turn a commit into an error
                logger.exception("a stored-messages listener failed")

    def _apply(self, op: WriteOp, received_at: float) -> WriteResult:
        if isinstance(op, StoreMessages):
            return self._store_messages(op, received_at)
        if isinstance(op, StoreStatus):
            agents_json = orjson.dumps(list(op.agents)).decode()
            self._conn.execute(UPSERT_STATUS, (op.node_id, op.sent_at, received_at, agents_json))
            return WriteResult(inserted=1)
        if isinstance(op, StoreFile):
            return self._store_file(op, received_at)
        return WriteResult(inserted=_apply_elsewhere(self._conn, op))

    def _store_messages(self, op: StoreMessages, received_at: float) -> WriteResult:
        conn = self._conn
        # Every message is inserted, under a known batch_id too: msg_id alone decides what is
        # already stored, so a reused or regrouped batch_id never drops one.
        # rowcount sums sqlite3_changes(), which leaves out rows changed by triggers.
        try:
            cursor = conn.executemany(INSERT_MESSAGE, [(*row, received_at) for row in op.rows])
        except sqlite3.IntegrityError as exc:
            raise BadRequest(f"{BROKEN_RULE}: {exc}") from exc
        inserted = cursor.rowcount
        if inserted < len(op.rows):
            self._refuse_foreign_ids(op.rows)
        if op.batch_id is None:
            return WriteResult(inserted=inserted)
        recorded = conn.execute(
            "INSERT INTO batches (batch_id, node_id, message_count, received_at)"
            " VALUES (?,?,?,?) ON CONFLICT (batch_id) DO NOTHING",
            (op.batch_id, op.node_id, len(op.rows), received_at),
        )
        return WriteResult(inserted=inserted, repeated=recorded.rowcount == 0)

    def _refuse_foreign_ids(self, rows: Sequence[MessageRow]) -> None:
        """409 when an ignored row's msg_id is stored for another (node, agent).

        A repeat is acked; a msg_id held by someone else is not, or the sender would
        count as stored a message the relay never kept (a squatted or colliding id).
        """
        wanted: dict[str, tuple[str, str]] = {}
        for row in rows:
            if wanted.setdefault(row.msg_id, (row.node_id, row.agent_id)) != (
                row.node_id,
                row.agent_id,
            ):
                raise Conflict(f"msg_id {row.msg_id!r} is given to two agents in one request")
        ids = list(wanted)
        for i in range(0, len(ids), IN_CHUNK):
            chunk = ids[i : i + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            held = self._conn.execute(
                f"SELECT msg_id, node_id, agent_id FROM messages WHERE msg_id IN ({marks})"
                " UNION ALL SELECT msg_id, node_id, agent_id FROM archived_ids"
                f" WHERE msg_id IN ({marks})",
                chunk * 2,
            )
            for msg_id, node_id, agent_id in held:
                if wanted[msg_id] != (node_id, agent_id):
                    raise Conflict(f"msg_id {msg_id!r} is already stored for another agent")

    def _store_file(self, op: StoreFile, received_at: float) -> WriteResult:
        r = op.record
        self._conn.execute(
            INSERT_FILE,
            (r.file_id, r.agent_id, r.node_id, r.msg_id, r.filename, r.size, r.sha256, r.path,
             received_at),
        )  # fmt: skip
        return WriteResult(inserted=1)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class SqliteStore:
    """`MessageStore` on `<data_dir>/messages/cluster_messages.db`."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        synchronous: str = "FULL",
        max_page_count: int | None = None,
    ) -> None:
        """Create or migrate the database now, so a broken one fails at start-up."""
        self.path = Path(data_dir) / DB_RELATIVE_PATH
        self._synchronous = synchronous
        self._max_page_count = max_page_count
        _create_reclaimable(self.path)
        conn = rsqlite.connect(self.path, synchronous=synchronous)
        try:
            rsqlite.migrate(conn, MIGRATIONS)
        finally:
            conn.close()
        self._pool = ReadPool(self.path)
        self._listeners: list[StoredListener] = []
        self.inbox = SqliteInbox(self._pool)
        self.sessions = SqliteSessions(self._pool)
        self.archive = SqliteArchive(self._pool)
        self._kept = KeptDigests()
        self.refill = SqliteRefill(self._pool, self._kept)

    def open_writer(self) -> SqliteWriter:
        """Open the writer connection in the calling thread."""
        return SqliteWriter(
            self.path, self._synchronous, self._max_page_count, self._listeners, self._kept
        )

    def on_stored(self, listener: StoredListener) -> None:
        """Call `listener` after each commit of new messages (from the writer's thread)."""
        self._listeners.append(listener)

    def query_messages(self, query: MessageQuery) -> MessagePage:
        """Return one page of messages and the total matching the filters.

        Pages run in the inbox's order, report time then id (newest first by default), so
        the (column, timestamp) index of a filter gives both the rows and their order. The
        keyset cursor is a row id: the row's own timestamp places it in that order.
        """
        where, params = _where(query)
        order = "DESC" if query.descending else "ASC"
        with self._pool.read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM messages WHERE {where}", params)
            count = int(total.fetchone()[0])
            keyset, keyset_params = _keyset(conn, query)
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where}{keyset}"
                f" ORDER BY timestamp {order}, id {order} LIMIT ? OFFSET ?"
            )
            rows = conn.execute(sql, [*params, *keyset_params, query.limit + 1, query.offset])
            page, has_more = bounded_page(rows, query.limit)
        return MessagePage(
            messages=[message for _, message in page],
            total=count,
            last_id=page[-1][0] if page else None,
            ids=[row_id for row_id, _ in page],
            last_ts=float(page[-1][1]["timestamp"]) if page else None,
            has_more=has_more,
        )

    def get_message(self, msg_id: str) -> dict[str, Any] | None:
        """Return one message, or None."""
        with self._pool.read() as conn:
            row = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE msg_id = ?", (msg_id,)
            ).fetchone()
        return None if row is None else message_dict(row)

    def mail_after(
        self, recipients: Sequence[str], after_id: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Messages to `recipients` past `after_id`, oldest first (no total: polled often)."""
        marks = ",".join("?" * len(recipients))
        sql = (
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE recipient IN ({marks}) AND id > ?"
            " ORDER BY id LIMIT ?"
        )
        with self._pool.read() as conn:
            rows = conn.execute(sql, [*recipients, after_id, limit + 1])
            page, _ = bounded_page(rows, limit)
        return page

    def node_statuses(self) -> list[dict[str, Any]]:
        """Return every node's last report, by node id."""
        with self._pool.read() as conn:
            rows = conn.execute(
                "SELECT node_id, sent_at, received_at, agents FROM node_status ORDER BY node_id"
            ).fetchall()
        return [
            {"node_id": n, "sent_at": s, "received_at": r, "agents": agents(a)}
            for n, s, r, a in rows
        ]

    def get_file(self, file_id: str) -> FileRecord | None:
        """Return a file's metadata, or None."""
        with self._pool.read() as conn:
            row = conn.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE file_id = ?", (file_id,)
            ).fetchone()
        return None if row is None else FileRecord(*row)

    def figures(self) -> StoreFigures:
        """Messages ever stored, the file's size with its WAL, each node's last report."""
        with self._pool.read() as conn:
            stored = conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
            reports = conn.execute("SELECT node_id, received_at FROM node_status").fetchall()
        files = (self.path, Path(f"{self.path}-wal"))
        size = sum(p.stat().st_size for p in files if p.exists())
        last = {str(n): float(r) for n, r in reports if isinstance(r, int | float)}
        return StoreFigures(int(stored), size, last)

    def close(self) -> None:
        """Close every read connection (the writer is closed by its owner)."""
        self._pool.close()


def _create_reclaimable(path: Path) -> None:
    """Create a missing file in incremental auto-vacuum, so space the archive frees can be
    handed back: the mode must be chosen before WAL is and before the first table."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _apply_elsewhere(
    conn: sqlite3.Connection,
    op: SetStatuses | RecordAudit | IndexEntries | SessionOp | ArchiveOp,
) -> int:
    """Hand an op to the module owning its tables; return the rows it changed."""
    if isinstance(op, ARCHIVE_OPS):
        return sqlite_archive.apply(conn, op)
    if isinstance(op, SetStatuses):
        return sqlite_actions.set_statuses(conn, op)
    if isinstance(op, RecordAudit):
        return sqlite_actions.record_audit(conn, op)
    if isinstance(op, IndexEntries):
        return sqlite_fts.apply(conn, op)
    return sqlite_sessions.apply(conn, op)


def _keyset(conn: sqlite3.Connection, query: MessageQuery) -> tuple[str, list[Any]]:
    """The terms that keep a page strictly past the cursor's row in (timestamp, id) order.

    A cursor names a row id. Its timestamp is read back; a row since deleted is placed at
    the timestamp of the nearest row stored before it, so the walk goes on from about there.
    """
    if query.after_id is None:
        return "", []
    ts = query.after_ts if query.after_ts is not None else _cursor_time(conn, query.after_id)
    if query.descending:
        return " AND timestamp <= ? AND (timestamp < ? OR id < ?)", [ts, ts, query.after_id]
    return " AND timestamp >= ? AND (timestamp > ? OR id > ?)", [ts, ts, query.after_id]


def _cursor_time(conn: sqlite3.Connection, after_id: int) -> float:
    """The report time of the cursor's row, or of the nearest row stored before it."""
    found = conn.execute(
        "SELECT timestamp FROM messages WHERE id <= ? ORDER BY id DESC LIMIT 1", (after_id,)
    ).fetchone()
    return float(found[0]) if found else -math.inf


def _where(query: MessageQuery) -> tuple[str, list[Any]]:
    """Build the WHERE clause; column names come from FILTER_FIELDS only, values are bound."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in query.filters:
        if column not in _FILTER_COLUMNS:
            raise ValueError(f"not a filterable column: {column!r}")
        if len(values) == 1:
            clauses.append(f"{column} = ?")
        else:
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
        params.extend(values)
    bounds, times = rsqlite.filter_terms(since=query.since, until=query.until)
    return " AND ".join(clauses + bounds) or "1", params + times
