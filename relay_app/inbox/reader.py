"""The inbox's reads: pages in report order, search, live additions, one message, counts.

Read-only connections of its own (WAL readers never wait for the writer). Every query
runs under a time budget (a SQLite progress handler), so an unlucky filter combination
costs at most the budget: counts then say "many" and a page says it took too long.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from relay_app.inbox import activity
from relay_app.inbox.audit import AuditEntry, trail
from relay_app.inbox.budget import QueryTooSlow, budgeted, budgeted_count, within
from relay_app.inbox.filters import PAGE_SIZE, Cursor, InboxView
from relay_app.inbox.search import SearchQuery, parse_search
from relay_app.inbox.thread import Post, thread_of
from runtime.core import sqlite as rsqlite
from runtime.core.envelope import decode_content

COLUMNS = (
    "m.id, m.msg_id, m.timestamp, m.agent_id, m.node_id, m.task_id, m.sender, m.recipient,"
    " m.role, m.priority, m.status, m.received_at, m.content"
)
FTS_JOIN = "messages_fts f CROSS JOIN messages m ON m.id = f.rowid"  # FTS drives the loop
COUNT_CAP = 1000
COUNT_BUDGET_S = 0.015
QUERY_BUDGET_S = 2.0
LIVE_LIMIT = 50
FACET_TTL_S = 10.0
CHART_BUDGET_S = 0.05
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    """One message as the inbox shows it (content decoded)."""

    id: int
    msg_id: str
    timestamp: float
    agent_id: str
    node_id: str
    task_id: str | None
    sender: str | None
    recipient: str | None
    role: str | None
    priority: str
    status: str
    received_at: float
    content: Any

    @property
    def cursor(self) -> Cursor:
        """This row's keyset position."""
        return Cursor(self.timestamp, self.id)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the inbox and how to reach its neighbours."""

    rows: list[Row]
    total: int | None  # None: more than could be counted within the budget
    capped: bool
    newer: Cursor | None
    older: Cursor | None
    watermark: int  # rows with a larger id arrived after this page was read
    search: SearchQuery | None


@dataclass(frozen=True, slots=True)
class Arrivals:
    """What a live update brings: new rows and the figures as of the same read."""

    rows: list[Row]
    watermark: int
    total: int | None  # the view's count, None when over the budget
    capped: bool
    unread: int
    # msg_id -> status, of the `shown` rows still in the view (the others left it)
    statuses: dict[str, str] = field(default_factory=dict)


class InboxReader:
    """Read-only access to the cluster database for the inbox."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        """Connections open lazily, one per concurrent request."""
        self._path = path
        self._clock = clock
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._facets: tuple[float, dict[str, list[str]]] | None = None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = rsqlite.connect(self._path, read_only=True, check_same_thread=False)
            with self._lock:
                self._all.append(conn)
        try:
            with rsqlite.transaction(conn, "DEFERRED"):
                yield conn
        finally:
            conn.set_progress_handler(None, 0)
            self._idle.put(conn)

    def page(self, view: InboxView, limit: int = PAGE_SIZE) -> Page:
        """The page of `view`: newest report first, keyset-paged."""
        search = parse_search(view.q) if view.q else None
        with self._read() as conn:
            watermark = _watermark(conn, search is not None)
            if search is not None:
                rows, more = self._search_rows(conn, view, search, limit)
            else:
                rows, more = self._plain_rows(conn, view, limit)
            total = budgeted_count(conn, COUNT_BUDGET_S, *_count_sql(view, search, self._clock()))
        newer, older = _neighbours(view, rows, more)
        return Page(rows, total, total == COUNT_CAP, newer, older, watermark, search)

    def _plain_rows(
        self, conn: sqlite3.Connection, view: InboxView, limit: int
    ) -> tuple[list[Row], bool]:
        where, params = conditions(view, self._clock())
        order = "DESC"
        if view.before is not None:
            where.append("m.timestamp <= ? AND (m.timestamp < ? OR m.id < ?)")
            params += [view.before.timestamp, view.before.timestamp, view.before.id]
        elif view.after is not None:
            where.append("m.timestamp >= ? AND (m.timestamp > ? OR m.id > ?)")
            params += [view.after.timestamp, view.after.timestamp, view.after.id]
            order = "ASC"
        sql = (
            f"SELECT {COLUMNS} FROM messages m WHERE {_all(where)}"
            f" ORDER BY m.timestamp {order}, m.id {order} LIMIT ?"
        )
        fetched = budgeted(conn, sql, [*params, limit + 1], QUERY_BUDGET_S)
        rows = [_row(r) for r in fetched[:limit]]
        if order == "ASC":
            rows.reverse()
        return rows, len(fetched) > limit

    def _search_rows(
        self, conn: sqlite3.Connection, view: InboxView, search: SearchQuery, limit: int
    ) -> tuple[list[Row], bool]:
        where, params = conditions(view, self._clock())
        source, key, terms, values = searched(search)
        where[0:0], params[0:0] = terms, values
        order = "DESC"
        if view.before is not None:
            where.append(f"{key} < ?")
            params.append(view.before.id)
        elif view.after is not None:
            where.append(f"{key} > ?")
            params.append(view.after.id)
            order = "ASC"
        sql = f"SELECT {COLUMNS} FROM {source} WHERE {_all(where)} ORDER BY {key} {order} LIMIT ?"
        fetched = budgeted(conn, sql, [*params, limit + 1], QUERY_BUDGET_S)
        rows = [_row(r) for r in fetched[:limit]]
        if order == "ASC":
            rows.reverse()
        return rows, len(fetched) > limit

    def arrived_since(self, view: InboxView, after_id: int, shown: Sequence[str] = ()) -> Arrivals:
        """Rows of `view` stored after `after_id` (newest first), with the view's count and
        the unread count read in the same transaction, so the page's figures match its rows.

        At most LIVE_LIMIT rows, the oldest first: the watermark then stops at the last
        row sent, and the next poll continues from there (none is skipped). `shown` are
        the msg_ids the page lists: those still in the view, with their statuses now, so
        rows acted on elsewhere (or past a time range) change or leave with the count.
        """
        search = parse_search(view.q) if view.q else None
        # `+column` keeps SQLite on the rowid range instead of a filter's index.
        where, params = conditions(view, self._clock(), plus=True)
        source, key, terms, values = (
            ("messages m", "m.id", [], []) if search is None else searched(search)
        )
        with self._read() as conn:
            watermark = _watermark(conn, search is not None)
            where[0:0] = [f"{key} > ?", f"{key} <= ?"]
            params[0:0] = [after_id, watermark]
            where[0:0], params[0:0] = terms, values
            sql = f"SELECT {COLUMNS} FROM {source} WHERE {_all(where)} ORDER BY {key} LIMIT ?"
            fetched = budgeted(conn, sql, [*params, LIVE_LIMIT], QUERY_BUDGET_S)
            if len(fetched) == LIVE_LIMIT:
                watermark = int(fetched[-1][0])
            total = budgeted_count(conn, COUNT_BUDGET_S, *_count_sql(view, search, self._clock()))
            unread = _unread(conn)
            statuses = _still_shown(conn, shown, *conditions(view, self._clock()))
        rows = [_row(r) for r in reversed(fetched)]
        capped = total == COUNT_CAP
        return Arrivals(rows, max(watermark, after_id), total, capped, unread, statuses)

    def message(self, msg_id: str) -> Row | None:
        """One message by msg_id, or None."""
        with self._read() as conn:
            found = conn.execute(f"SELECT {COLUMNS} FROM messages m WHERE m.msg_id = ?", (msg_id,))
            row = found.fetchone()
        return None if row is None else _row(row)

    def thread(self, msg_id: str) -> list[Post]:
        """The follow-ups and replies answering a message (relay_app.inbox.thread)."""
        with self._read() as conn:
            return thread_of(conn, msg_id)

    def audit_of(self, msg_id: str) -> tuple[list[AuditEntry], int]:
        """A message's audit trail, newest first (at most audit.SHOWN), and its length."""
        with self._read() as conn:
            return trail(conn, msg_id)

    def files_of(self, msg_id: str) -> list[dict[str, Any]]:
        """The files its own agent attached to a message.

        Any node may name any msg_id in an upload (the file may arrive before its
        message): a file of another agent is not shown as this message's.
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT f.file_id, f.filename, f.size, f.sha256 FROM files f"
                " JOIN messages m ON m.msg_id = f.msg_id"
                " AND m.node_id = f.node_id AND m.agent_id = f.agent_id"
                " WHERE f.msg_id = ? ORDER BY f.received_at",
                (msg_id,),
            ).fetchall()
        return [{"file_id": f, "filename": n, "size": s, "sha256": h} for f, n, s, h in rows]

    def executed(self, msg_ids: Sequence[str]) -> dict[str, str]:
        """report msg_id -> follow-up msg_id, for those of `msg_ids` that were executed."""
        with self._read() as conn:
            return activity.executed(conn, msg_ids)

    def volume(self) -> activity.Series | None:
        """Messages per hour over the last day; None past a short budget."""
        return self._chart(activity.volume)

    def throughput(self) -> dict[str, activity.Series]:
        """Each node's messages per 5 minutes over the last hour; {} past a short budget."""
        return self._chart(activity.throughput) or {}

    def _chart(self, read: Callable[[sqlite3.Connection, float], T]) -> T | None:
        now = self._clock()
        with self._read() as conn:
            try:
                return within(conn, CHART_BUDGET_S, lambda: read(conn, now))
            except QueryTooSlow:
                return None  # the charts are a nicety, the page is not

    def counts(self) -> dict[str, int]:
        """Messages per status (exact, kept by triggers)."""
        with self._read() as conn:
            rows = conn.execute("SELECT status, n FROM inbox_counts").fetchall()
        return {status: int(n) for status, n in rows}

    def unread_count(self) -> int:
        """The number of unread messages."""
        with self._read() as conn:
            return _unread(conn)

    def facets(self) -> dict[str, list[str]]:
        """The distinct agents, nodes and roles (an index skip-scan each, cached briefly)."""
        now = time.monotonic()
        if self._facets is not None and now - self._facets[0] < FACET_TTL_S:
            return self._facets[1]
        with self._read() as conn:
            found = {col: _distinct(conn, col) for col in ("agent_id", "node_id", "role")}
        self._facets = (now, found)
        return found

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def conditions(view: InboxView, now: float, *, plus: bool = False) -> tuple[list[str], list[Any]]:
    """WHERE terms for the view's filters; values are bound, column names are constants."""
    p = "+" if plus else ""
    where: list[str] = []
    params: list[Any] = []
    if view.status == "inbox":
        where.append(f"{p}m.status != 'archived'")
    elif view.status != "all":
        where.append(f"{p}m.status = ?")
        params.append(view.status)
    for column, value in (
        ("role", view.role),
        ("agent_id", view.agent),
        ("node_id", view.node),
        ("priority", view.priority),
    ):
        if value is not None:
            where.append(f"{p}m.{column} = ?")
            params.append(value)
    since, until = view.since_until(now)
    if since is not None:
        where.append(f"{p}m.timestamp >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{p}m.timestamp < ?")
        params.append(until)
    return where, params


def searched(search: SearchQuery) -> tuple[str, str, list[str], list[Any]]:
    """A search's FROM, id column, WHERE terms and their values.

    Exclusions alone (`-ACME`) list every indexed message without them, as a mail client's
    search does: FTS5 cannot match "not X" by itself, so the messages table drives the
    loop and the index only names the rows to leave out.
    """
    if search.groups:
        return FTS_JOIN, "f.rowid", ["messages_fts MATCH ?"], [search.match()]
    terms = [
        "m.id <= (SELECT value FROM inbox_state WHERE key = 'fts_indexed_id')",
        "m.id NOT IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)",
    ]
    return "messages m", "m.id", terms, [search.match()]


def _still_shown(
    conn: sqlite3.Connection, msg_ids: Sequence[str], where: list[str], params: list[Any]
) -> dict[str, str]:
    """msg_id -> status of those of `msg_ids` the view's filters still admit.

    A search's terms are left out: content never changes, so a row that matched still does.
    """
    if not msg_ids:
        return {}
    marks = ",".join("?" * len(msg_ids))
    sql = f"SELECT m.msg_id, m.status FROM messages m WHERE m.msg_id IN ({marks})"
    sql += "".join(f" AND {term}" for term in where)
    return {str(m): str(s) for m, s in conn.execute(sql, [*msg_ids, *params])}


def _unread(conn: sqlite3.Connection) -> int:
    found = conn.execute("SELECT n FROM inbox_counts WHERE status = 'unread'").fetchone()
    return int(found[0]) if found else 0


def _all(where: Sequence[str]) -> str:
    return " AND ".join(where) or "1"


def _count_sql(view: InboxView, search: SearchQuery | None, now: float) -> tuple[str, list[Any]]:
    where, params = conditions(view, now)
    if search is None:
        inner = f"SELECT 1 FROM messages m WHERE {_all(where)} LIMIT {COUNT_CAP}"
    else:
        source, _, terms, values = searched(search)
        inner = f"SELECT 1 FROM {source} WHERE {_all([*terms, *where])} LIMIT {COUNT_CAP}"
        params[0:0] = values
    return f"SELECT COUNT(*) FROM ({inner})", params


def _watermark(conn: sqlite3.Connection, search: bool) -> int:
    """The largest id a live update can start from (for search: the largest indexed id)."""
    top = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0])
    if not search:
        return top
    state = conn.execute("SELECT value FROM inbox_state WHERE key = 'fts_indexed_id'")
    return min(top, int(state.fetchone()[0]))


def _neighbours(
    view: InboxView, rows: list[Row], more: bool
) -> tuple[Cursor | None, Cursor | None]:
    if not rows:
        return None, None
    if view.after is not None:
        return (rows[0].cursor if more else None), rows[-1].cursor
    newer = rows[0].cursor if view.before is not None else None
    return newer, (rows[-1].cursor if more else None)


def _distinct(conn: sqlite3.Connection, column: str) -> list[str]:
    sql = (
        f"WITH RECURSIVE d(v) AS (SELECT MIN({column}) FROM messages UNION ALL"
        f" SELECT (SELECT MIN({column}) FROM messages WHERE {column} > d.v) FROM d"
        " WHERE d.v IS NOT NULL) SELECT v FROM d WHERE v IS NOT NULL LIMIT 500"
    )
    return [str(v) for (v,) in conn.execute(sql)]


def _row(raw: Sequence[Any]) -> Row:
    blob = raw[-1]
    try:
        content = decode_content(blob)
    except Exception as exc:  # a bad blob must not take the page down
        content = {"error": f"content cannot be decoded: {exc}"}
    (row_id, msg_id, ts, agent_id, node_id, task_id, sender, recipient, role, priority, status,
     received_at) = raw[:-1]  # fmt: skip
    return Row(row_id, msg_id, ts, agent_id, node_id, task_id, sender, recipient, role, priority,
               status, received_at, content)  # fmt: skip
