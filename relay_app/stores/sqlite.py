"""The cluster store on SQLite: one writer connection, a pool of read-only readers (WAL)."""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from relay_app.errors import Conflict, StorageFull, StoreUnavailable
from relay_app.store import (
    FILTER_FIELDS,
    FileRecord,
    IndexEntries,
    MessagePage,
    MessageQuery,
    MessageRow,
    RecordAudit,
    SetStatuses,
    StoreFile,
    StoreMessages,
    StoreStatus,
    WriteOp,
    WriteResult,
)
from relay_app.stores.sqlite_schema import MIGRATIONS
from runtime.core import sqlite as rsqlite
from runtime.core.envelope import decode_json

DB_RELATIVE_PATH = Path("messages") / "cluster_messages.db"

INSERT_MESSAGE = (
    "INSERT OR IGNORE INTO messages (msg_id, timestamp, task_id, sender, recipient, role,"
    " content, node_id, agent_id, priority, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
MESSAGE_COLUMNS = (
    "id, msg_id, timestamp, agent_id, node_id, task_id, sender, recipient, role, priority,"
    " content, received_at, status"
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
INSERT_AUDIT = "INSERT INTO inbox_audit (msg_id, action, user_name, at, detail) VALUES (?,?,?,?,?)"
_FILTER_COLUMNS = frozenset(FILTER_FIELDS.values())
FTS_MARK = "SELECT value FROM inbox_state WHERE key = 'fts_indexed_id'"
# Bound on the ids in one IN (...) list (SQLite's limit on bound parameters is far higher).
IN_CHUNK = 500
# A time window holding at most this many messages is read through the timestamp index.
NARROW_WINDOW = 5000
# Content bytes in one page of GET /query/messages past which the page is cut (1000
# messages of up to 1 MiB each would otherwise be a 1 GiB response held in memory; a
# page costs about four times its size while it is encoded and sent).
MAX_PAGE_BYTES = 4 * 1024 * 1024
CONTENT_INDEX = 10  # of `content` in MESSAGE_COLUMNS
FILE_COLUMNS = "file_id, agent_id, node_id, msg_id, filename, size, sha256, path, received_at"


class SqliteWriter:
    """The one writing connection; every `write` call is one transaction."""

    def __init__(self, path: Path, synchronous: str, max_page_count: int | None) -> None:
        """Open the connection; `max_page_count` caps the file size (tests of a full disk)."""
        self._conn = rsqlite.connect(path, synchronous=synchronous)
        if max_page_count is not None:
            self._conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")

    def write(self, ops: Sequence[WriteOp], received_at: float) -> list[WriteResult]:
        """Apply every op in one transaction, or none of them."""
        conn = self._conn
        try:
            with rsqlite.transaction(conn):
                return [self._apply(op, received_at) for op in ops]
        except sqlite3.Error as exc:
            # COMMIT itself can fail (the WAL cannot grow) and leave the transaction open.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if rsqlite.is_disk_full(exc):
                raise StorageFull(
                    "the cluster database is full (disk or page limit); nothing was stored"
                ) from exc
            raise StoreUnavailable(f"the cluster database failed: {exc}") from exc

    def _apply(self, op: WriteOp, received_at: float) -> WriteResult:
        if isinstance(op, StoreMessages):
            return self._store_messages(op, received_at)
        if isinstance(op, StoreStatus):
            agents = orjson.dumps(list(op.agents)).decode()
            self._conn.execute(UPSERT_STATUS, (op.node_id, op.sent_at, received_at, agents))
            return WriteResult(inserted=1)
        if isinstance(op, SetStatuses):
            return WriteResult(inserted=self._set_statuses(op))
        if isinstance(op, IndexEntries):
            return WriteResult(inserted=self._index(op))
        if isinstance(op, RecordAudit):
            return WriteResult(inserted=self._audit(op))
        return self._store_file(op, received_at)

    def _set_statuses(self, op: SetStatuses) -> int:
        changed: list[str] = []
        allowed = ",".join("?" * len(op.from_statuses))
        for i in range(0, len(op.msg_ids), IN_CHUNK):
            ids = op.msg_ids[i : i + IN_CHUNK]
            cursor = self._conn.execute(
                f"UPDATE messages SET status = ? WHERE msg_id IN ({','.join('?' * len(ids))})"
                f" AND status IN ({allowed}) RETURNING msg_id",
                (op.status, *ids, *op.from_statuses),
            )
            changed.extend(row[0] for row in cursor.fetchall())
        if op.audit is not None:
            self._audit(RecordAudit(op.audit, tuple((m, None) for m in changed)))
        return len(changed)

    def _audit(self, op: RecordAudit) -> int:
        a = op.audit
        self._conn.executemany(
            INSERT_AUDIT, [(m, a.action, a.user, a.at, detail) for m, detail in op.entries]
        )
        return len(op.entries)

    def _index(self, op: IndexEntries) -> int:
        mark = self._conn.execute(FTS_MARK).fetchone()[0]
        if int(mark) != op.after_id:
            return 0  # indexed already, by an op that overtook this one
        self._conn.executemany("INSERT INTO messages_fts (rowid, body) VALUES (?, ?)", op.entries)
        self._conn.execute(
            "UPDATE inbox_state SET value = ? WHERE key = 'fts_indexed_id'", (op.up_to_id,)
        )
        return len(op.entries)

    def _store_messages(self, op: StoreMessages, received_at: float) -> WriteResult:
        conn = self._conn
        # Every message goes through INSERT OR IGNORE, under a known batch_id too: msg_id alone
        # decides what is already stored, so a reused or regrouped batch_id never drops one.
        # rowcount sums sqlite3_changes(), which leaves out rows changed by triggers.
        cursor = conn.executemany(INSERT_MESSAGE, [(*row, received_at) for row in op.rows])
        inserted = cursor.rowcount
        if inserted < len(op.rows):
            self._refuse_foreign_ids(op.rows)
        if op.batch_id is None:
            return WriteResult(inserted=inserted)
        recorded = conn.execute(
            "INSERT OR IGNORE INTO batches (batch_id, node_id, message_count, received_at)"
            " VALUES (?,?,?,?)",
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
            held = self._conn.execute(
                "SELECT msg_id, node_id, agent_id FROM messages"
                f" WHERE msg_id IN ({','.join('?' * len(chunk))})",
                chunk,
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
        conn = rsqlite.connect(self.path, synchronous=synchronous)
        try:
            rsqlite.migrate(conn, MIGRATIONS)
        finally:
            conn.close()
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def open_writer(self) -> SqliteWriter:
        """Open the writer connection in the calling thread."""
        return SqliteWriter(self.path, self._synchronous, self._max_page_count)

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """Lend a read-only connection; one read transaction, so counts match pages."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = rsqlite.connect(self.path, read_only=True, check_same_thread=False)
            with self._lock:
                self._all.append(conn)
        try:
            with rsqlite.transaction(conn, "DEFERRED"):
                yield conn
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"reading the cluster database failed: {exc}") from exc
        finally:
            self._idle.put(conn)

    def query_messages(self, query: MessageQuery) -> MessagePage:
        """Return one page of messages and the total matching the filters."""
        where, params = _where(query)
        order = "DESC" if query.descending else "ASC"
        keyset, keyset_params = "", []
        if query.after_id is not None:
            keyset = f" AND id {'<' if query.descending else '>'} ?"
            keyset_params = [query.after_id]
        with self._reader() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM messages WHERE {where}", params)
            count = int(total.fetchone()[0])
            hint = _time_index_hint(conn, query)
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages{hint} WHERE {where}{keyset}"
                f" ORDER BY id {order} LIMIT ? OFFSET ?"
            )
            rows = conn.execute(sql, [*params, *keyset_params, query.limit + 1, query.offset])
            page, has_more = _bounded_page(rows, query.limit)
        return MessagePage(
            messages=[message for _, message in page],
            total=count,
            last_id=page[-1][0] if page else None,
            has_more=has_more,
        )

    def get_message(self, msg_id: str) -> dict[str, Any] | None:
        """Return one message, or None."""
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE msg_id = ?", (msg_id,)
            ).fetchone()
        return None if row is None else _message_dict(row)

    def mail_after(
        self, recipients: Sequence[str], after_id: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Messages to `recipients` past `after_id`, oldest first (no total: polled often)."""
        marks = ",".join("?" * len(recipients))
        sql = (
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE recipient IN ({marks}) AND id > ?"
            " ORDER BY id LIMIT ?"
        )
        with self._reader() as conn:
            rows = conn.execute(sql, [*recipients, after_id, limit + 1])
            page, _ = _bounded_page(rows, limit)
        return page

    def node_statuses(self) -> list[dict[str, Any]]:
        """Return every node's last report, by node id."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT node_id, sent_at, received_at, agents FROM node_status ORDER BY node_id"
            ).fetchall()
        return [
            {"node_id": n, "sent_at": s, "received_at": r, "agents": _agents(a)}
            for n, s, r, a in rows
        ]

    def get_file(self, file_id: str) -> FileRecord | None:
        """Return a file's metadata, or None."""
        with self._reader() as conn:
            row = conn.execute(
                f"SELECT {FILE_COLUMNS} FROM files WHERE file_id = ?", (file_id,)
            ).fetchone()
        return None if row is None else FileRecord(*row)

    def close(self) -> None:
        """Close every read connection (the writer is closed by its owner)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _time_index_hint(conn: sqlite3.Connection, query: MessageQuery) -> str:
    """Drive a narrow time window from the timestamp index.

    Left alone, SQLite walks the table in id order and filters on the timestamp: when few
    rows fall in the window (a node polling `since` the newest message) it reads the whole
    table. A bounded probe of the index tells whether the window is narrow; if so, reading
    it through the index and sorting its few rows by id is cheaper by orders of magnitude.
    """
    if query.since is None and query.until is None:
        return ""
    bounds, params = [], []
    if query.since is not None:
        bounds.append("timestamp >= ?")
        params.append(query.since)
    if query.until is not None:
        bounds.append("timestamp < ?")
        params.append(query.until)
    probe = conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM messages INDEXED BY idx_messages_timestamp"
        f" WHERE {' AND '.join(bounds)} LIMIT ?)",
        [*params, NARROW_WINDOW + 1],
    )
    return " INDEXED BY idx_messages_timestamp" if int(probe.fetchone()[0]) <= NARROW_WINDOW else ""


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
    if query.since is not None:
        clauses.append("timestamp >= ?")
        params.append(query.since)
    if query.until is not None:
        clauses.append("timestamp < ?")
        params.append(query.until)
    return " AND ".join(clauses) or "1", params


def _bounded_page(
    rows: Iterable[Sequence[Any]], limit: int
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """Up to `limit` (row id, message), cut once their content passes MAX_PAGE_BYTES.

    A page holds at least one message; a cut page says there is more, and its `next`
    cursor resumes after its last row. Rows are read one by one, so a cut page never
    holds the rest of the limit in memory.
    """
    page: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for row in rows:
        if len(page) == limit or size > MAX_PAGE_BYTES:
            return page, True
        raw = content_json(row[CONTENT_INDEX])
        size += len(raw)
        page.append((row[0], _message_dict(row, raw)))
    return page, False


def _message_dict(row: Sequence[Any], raw: bytes | None = None) -> dict[str, Any]:
    """Turn a row of MESSAGE_COLUMNS into the wire dict plus received_at and status.

    `content` is an orjson.Fragment of the stored JSON (`raw`, when already read).
    """
    (_, msg_id, ts, agent_id, node_id, task_id, sender, recipient, role, priority, content,
     received_at, status) = row  # fmt: skip
    return {
        "msg_id": msg_id,
        "timestamp": ts,
        "agent_id": agent_id,
        "node_id": node_id,
        "task_id": task_id,
        "sender": sender,
        "recipient": recipient,
        "role": role,
        "priority": priority,
        "content": orjson.Fragment(content_json(content) if raw is None else raw),
        "received_at": received_at,
        "status": status,
    }


def _agents(stored: Any) -> list[dict[str, Any]]:
    """A report's agents as stored; what no version should have stored reads as none."""
    try:
        agents = orjson.loads(stored)
    except (orjson.JSONDecodeError, TypeError):
        return []
    return [a for a in agents if isinstance(a, dict)] if isinstance(agents, list) else []


def content_json(blob: Any) -> bytes:
    """The stored JSON of a row's content, for a response to pass through unparsed.

    Passing the bytes through keeps any nesting a row holds (an older version stored
    deeper content than orjson can encode) from breaking the response, and saves the
    CPU of a parse and a dump. A blob that cannot be inflated becomes a JSON note.
    """
    try:
        raw = decode_json(blob)
    except Exception as exc:  # whatever an old row holds, the read still answers
        return orjson.dumps({"error": f"content cannot be decoded: {exc}"})
    return raw if raw.strip() else b"null"
