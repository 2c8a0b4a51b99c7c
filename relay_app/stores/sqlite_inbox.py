"""`InboxStore` on SQLite: the inbox's pages and live arrivals (the SQL of both lives here).

Every query runs under the caller's time budget (`sqlite_budget`), so an unlucky filter
combination costs at most the budget: counts then say None and a page raises
QueryTooSlow. Search runs on the contentless FTS5 table `messages_fts`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from relay_app.store_inbox import (
    Arrivals,
    AttachedFile,
    AuditRecord,
    InboxPage,
    InboxQuery,
    InboxRow,
    ReadBudget,
    ThreadMessage,
)
from relay_app.store_search import IndexChunk, SearchQuery
from relay_app.stores import sqlite_fts
from relay_app.stores import sqlite_inbox_details as details
from relay_app.stores.sqlite_budget import budgeted, budgeted_count, within
from relay_app.stores.sqlite_pool import ReadPool
from relay_app.stores.sqlite_rows import INBOX_COLUMNS, inbox_row
from runtime.core.sqlite import filter_terms

FTS_JOIN = "messages_fts f CROSS JOIN messages m ON m.id = f.rowid"  # FTS drives the loop


class SqliteInbox:
    """The inbox's reads, each on a connection of the store's one read pool."""

    def __init__(self, pool: ReadPool) -> None:
        """Read through `pool`."""
        self._pool = pool

    def page(self, query: InboxQuery, budget: ReadBudget) -> InboxPage:
        """One page: newest report first (search: newest id first), keyset-paged."""
        with self._pool.read() as conn:
            watermark = _watermark(conn, query.search is not None)
            if query.search is not None:
                rows, more = _search_rows(conn, query, query.search, budget)
            else:
                rows, more = _plain_rows(conn, query, budget)
            total = budgeted_count(conn, budget.count_s, *_count_sql(query, budget.count_cap))
        return InboxPage(rows, more, total, watermark)

    def arrivals(
        self, query: InboxQuery, after_id: int, shown: Sequence[str], budget: ReadBudget
    ) -> Arrivals:
        """Rows stored after `after_id`, the counts and the shown rows' statuses, one read."""
        search = query.search
        # `+column` keeps SQLite on the rowid range instead of a filter's index.
        where, params = conditions(query, plus=True)
        source, key, terms, values = (
            ("messages m", "m.id", [], []) if search is None else searched(search)
        )
        with self._pool.read() as conn:
            watermark = _watermark(conn, search is not None)
            where[0:0] = [f"{key} > ?", f"{key} <= ?"]
            params[0:0] = [after_id, watermark]
            where[0:0], params[0:0] = terms, values
            sql = f"SELECT {INBOX_COLUMNS} FROM {source} WHERE {_all(where)} ORDER BY {key} LIMIT ?"
            fetched = budgeted(conn, sql, [*params, budget.rows], budget.rows_s)
            if len(fetched) == budget.rows:
                watermark = int(fetched[-1][0])
            total = budgeted_count(conn, budget.count_s, *_count_sql(query, budget.count_cap))
            unread = details.unread(conn)
            statuses = _still_shown(conn, shown, *conditions(query))
        rows = [inbox_row(r) for r in reversed(fetched)]
        capped = total == budget.count_cap
        return Arrivals(rows, max(watermark, after_id), total, capped, unread, statuses)

    def message(self, msg_id: str) -> InboxRow | None:
        """One message by msg_id, or None."""
        with self._pool.read() as conn:
            return details.message(conn, msg_id)

    def later_messages(self, msg_id: str, limit: int) -> list[ThreadMessage]:
        """Messages after `msg_id` that its agent sent or received, oldest first."""
        with self._pool.read() as conn:
            return details.later_messages(conn, msg_id, limit)

    def audit_trail(self, msg_id: str, limit: int) -> tuple[list[AuditRecord], int]:
        """The newest `limit` audit entries of a message and how many it has."""
        with self._pool.read() as conn:
            return details.audit_trail(conn, msg_id, limit)

    def attached_files(self, msg_id: str) -> list[AttachedFile]:
        """The files its own agent attached to a message."""
        with self._pool.read() as conn:
            return details.attached_files(conn, msg_id)

    def executed(self, msg_ids: Sequence[str]) -> dict[str, str]:
        """report msg_id -> follow-up msg_id, for the executed ones."""
        with self._pool.read() as conn:
            return details.executed(conn, msg_ids)

    def volume(self, start: float, bucket_s: float, buckets: int, budget_s: float) -> list[int]:
        """Messages per bucket by report time (one range scan of its index)."""
        with self._pool.read() as conn:
            return within(conn, budget_s, lambda: details.volume(conn, start, bucket_s, buckets))

    def node_volume(
        self, start: float, bucket_s: float, buckets: int, budget_s: float
    ) -> dict[str, list[int]]:
        """Messages per node per bucket (one range scan, grouped)."""
        with self._pool.read() as conn:
            return within(
                conn, budget_s, lambda: details.node_volume(conn, start, bucket_s, buckets)
            )

    def status_counts(self) -> dict[str, int]:
        """Messages per status (exact, kept by triggers)."""
        with self._pool.read() as conn:
            return details.status_counts(conn)

    def unread_count(self) -> int:
        """The number of unread messages."""
        with self._pool.read() as conn:
            return details.unread(conn)

    def facets(self, limit: int) -> dict[str, list[str]]:
        """The distinct agents, nodes and roles (an index skip-scan each)."""
        with self._pool.read() as conn:
            return {c: details.distinct(conn, c, limit) for c in ("agent_id", "node_id", "role")}

    def unindexed(self, limit: int) -> IndexChunk | None:
        """The next messages the full-text index lacks."""
        with self._pool.read() as conn:
            return sqlite_fts.unindexed(conn, limit)


def _plain_rows(
    conn: sqlite3.Connection, query: InboxQuery, budget: ReadBudget
) -> tuple[list[InboxRow], bool]:
    where, params = conditions(query)
    order = "DESC"
    if query.before is not None:
        where.append("m.timestamp <= ? AND (m.timestamp < ? OR m.id < ?)")
        params += [query.before.timestamp, query.before.timestamp, query.before.id]
    elif query.after is not None:
        where.append("m.timestamp >= ? AND (m.timestamp > ? OR m.id > ?)")
        params += [query.after.timestamp, query.after.timestamp, query.after.id]
        order = "ASC"
    sql = (
        f"SELECT {INBOX_COLUMNS} FROM messages m WHERE {_all(where)}"
        f" ORDER BY m.timestamp {order}, m.id {order} LIMIT ?"
    )
    return _fetch(conn, sql, params, budget, order)


def _search_rows(
    conn: sqlite3.Connection, query: InboxQuery, search: SearchQuery, budget: ReadBudget
) -> tuple[list[InboxRow], bool]:
    where, params = conditions(query)
    source, key, terms, values = searched(search)
    where[0:0], params[0:0] = terms, values
    order = "DESC"
    if query.before is not None:
        where.append(f"{key} < ?")
        params.append(query.before.id)
    elif query.after is not None:
        where.append(f"{key} > ?")
        params.append(query.after.id)
        order = "ASC"
    sql = f"SELECT {INBOX_COLUMNS} FROM {source} WHERE {_all(where)} ORDER BY {key} {order} LIMIT ?"
    return _fetch(conn, sql, params, budget, order)


def _fetch(
    conn: sqlite3.Connection, sql: str, params: list[Any], budget: ReadBudget, order: str
) -> tuple[list[InboxRow], bool]:
    """Up to budget.rows rows, newest first, and whether more lie past them."""
    fetched = budgeted(conn, sql, [*params, budget.rows + 1], budget.rows_s)
    rows = [inbox_row(r) for r in fetched[: budget.rows]]
    if order == "ASC":
        rows.reverse()
    return rows, len(fetched) > budget.rows


def conditions(
    query: InboxQuery, *, plus: bool = False, counting: bool = False
) -> tuple[list[str], list[Any]]:
    """WHERE terms for the query's filters; values are bound, column names are constants.

    `counting`: the default view names the statuses it keeps, so a count reads two ranges
    of the status index instead of passing over every archived row.
    """
    p = "+" if plus else ""
    where: list[str] = []
    params: list[Any] = []
    if query.status == "inbox" and counting:
        where.append(f"{p}m.status IN ('unread', 'acknowledged')")
    elif query.status == "inbox":
        where.append(f"{p}m.status != 'archived'")
    elif query.status != "all":
        where.append(f"{p}m.status = ?")
        params.append(query.status)
    fields = (
        ("role", query.role),
        ("agent_id", query.agent_id),
        ("node_id", query.node_id),
        ("priority", query.priority),
    )
    terms, values = filter_terms(
        ((f"{p}m.{column}", value) for column, value in fields),
        since=query.since,
        until=query.until,
        timestamp=f"{p}m.timestamp",
    )
    return where + terms, params + values


def searched(search: SearchQuery) -> tuple[str, str, list[str], list[Any]]:
    """A search's FROM, id column, WHERE terms and their values.

    Exclusions alone (`-ACME`) list every indexed message without them, as a mail client's
    search does: FTS5 cannot match "not X" by itself, so the messages table drives the
    loop and the index only names the rows to leave out.
    """
    if search.groups:
        return FTS_JOIN, "f.rowid", ["messages_fts MATCH ?"], [search.match()]
    terms = [
        f"m.id <= ({sqlite_fts.FTS_MARK})",
        "m.id NOT IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)",
    ]
    return "messages m", "m.id", terms, [search.match()]


def _still_shown(
    conn: sqlite3.Connection, msg_ids: Sequence[str], where: list[str], params: list[Any]
) -> dict[str, str]:
    """msg_id -> status of those of `msg_ids` the query's filters still admit.

    A search's terms are left out: content never changes, so a row that matched still does.
    """
    if not msg_ids:
        return {}
    marks = ",".join("?" * len(msg_ids))
    sql = f"SELECT m.msg_id, m.status FROM messages m WHERE m.msg_id IN ({marks})"
    sql += "".join(f" AND {term}" for term in where)
    return {str(m): str(s) for m, s in conn.execute(sql, [*msg_ids, *params])}


def _all(where: Sequence[str]) -> str:
    return " AND ".join(where) or "1"


def _count_sql(query: InboxQuery, cap: int) -> tuple[str, list[Any]]:
    where, params = conditions(query, counting=True)
    search = query.search
    if search is None:
        inner = f"SELECT 1 FROM messages m WHERE {_all(where)} LIMIT {int(cap)}"
    else:
        source, _, terms, values = searched(search)
        inner = f"SELECT 1 FROM {source} WHERE {_all([*terms, *where])} LIMIT {int(cap)}"
        params[0:0] = values
    return f"SELECT COUNT(*) FROM ({inner})", params


def _watermark(conn: sqlite3.Connection, search: bool) -> int:
    """The largest id a live update can start from (for search: the largest indexed id)."""
    top = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0])
    if not search:
        return top
    return min(top, sqlite_fts.indexed_up_to(conn))
