"""`InboxStore` on PostgreSQL: the inbox's pages, live arrivals, details and counts.

The results are SQLite's (`sqlite_inbox`) with two differences of the engine. Positions
are commit positions (`postgres_follow`), not row ids: a page's watermark is the horizon
read before its rows, and arrivals follow in commit order below the horizon, so a row
whose transaction commits late is still brought, never skipped. And search needs no
indexer: the search column is filled at insert (`postgres_search` builds the tsquery).

Budgets are `statement_timeout`s local to the read's transaction: a page past its time
raises QueryTooSlow, a count past its time is None (its savepoint is rolled back).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from relay_app.errors import QueryTooSlow, StoreUnavailable
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
from relay_app.store_search import IndexChunk
from relay_app.stores import postgres_inbox_details as details
from relay_app.stores.postgres_follow import POSITION_MAX, follow, horizon_position
from relay_app.stores.postgres_inbox_details import Conn
from relay_app.stores.postgres_reads import time_window
from relay_app.stores.postgres_search import search_terms
from relay_app.stores.sqlite_rows import INBOX_COLUMNS, inbox_row

# One snapshot for the whole read, so its counts match its rows and its horizon.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
TIMEOUT = "SELECT set_config('statement_timeout', %s, true)"
MAX_TIMEOUT_MS = 2**31 - 1  # statement_timeout is an int of milliseconds; 0 would mean none


class PostgresInbox:
    """The inbox's reads, each on a connection of the store's pool."""

    def __init__(self, pool: ConnectionPool, offset: int) -> None:
        """Read through `pool`; `offset` is the database's position offset (postgres_follow)."""
        self._pool = pool
        self._offset = offset

    def page(self, query: InboxQuery, budget: ReadBudget) -> InboxPage:
        """One page: newest report first (search: newest id first), keyset-paged."""
        with self._read(snapshot=True) as conn:
            watermark = horizon_position(conn, self._offset)
            total = count_within(conn, budget.count_s, *_count_sql(query, budget.count_cap))
            with within(conn, budget.rows_s):
                if query.search is not None:
                    few = total is not None and total < budget.count_cap
                    rows, more = _search_rows(conn, query, budget, few=few)
                else:
                    rows, more = _plain_rows(conn, query, budget)
        return InboxPage(rows, more, total, watermark)

    def arrivals(
        self, query: InboxQuery, after_id: int, shown: Sequence[str], budget: ReadBudget
    ) -> Arrivals:
        """Rows committed past the position `after_id` (the first budget.rows in commit
        order, listed newest first), the counts and the shown rows' statuses, one snapshot."""
        where, params = _matching(query)
        with self._read(snapshot=True) as conn:
            unread = details.unread(conn)
            statuses = _still_shown(conn, shown, *conditions(query))
            with within(conn, budget.rows_s):
                followed = follow(
                    conn,
                    min(max(after_id, 0), POSITION_MAX),
                    max(budget.rows, 1),
                    self._offset,
                    columns=INBOX_COLUMNS,
                    where="".join(f" AND {term}" for term in where),
                    params=params,
                )
            total = count_within(conn, budget.count_s, *_count_sql(query, budget.count_cap))
        rows = [inbox_row(r[1:]) for r in reversed(followed.rows)]  # r[0]: its position
        capped = total == budget.count_cap
        watermark = max(followed.position, after_id)
        return Arrivals(rows, watermark, total, capped, unread, statuses)

    def message(self, msg_id: str) -> InboxRow | None:
        """One message by msg_id, or None."""
        if not storable(msg_id):
            return None
        with self._read() as conn:
            return details.message(conn, msg_id)

    def later_messages(self, msg_id: str, limit: int) -> list[ThreadMessage]:
        """Messages after `msg_id` that its agent sent or received, oldest first."""
        if not storable(msg_id):
            return []
        with self._read() as conn:
            return details.later_messages(conn, msg_id, limit)

    def audit_trail(self, msg_id: str, limit: int) -> tuple[list[AuditRecord], int]:
        """The newest `limit` audit entries of a message and how many it has."""
        if not storable(msg_id):
            return [], 0
        with self._read(snapshot=True) as conn:
            return details.audit_trail(conn, msg_id, limit)

    def attached_files(self, msg_id: str) -> list[AttachedFile]:
        """The files its own agent attached to a message."""
        if not storable(msg_id):
            return []
        with self._read() as conn:
            return details.attached_files(conn, msg_id)

    def executed(self, msg_ids: Sequence[str]) -> dict[str, str]:
        """report msg_id -> follow-up msg_id, for the executed ones."""
        with self._read() as conn:
            return details.executed(conn, [m for m in msg_ids if storable(m)])

    def volume(self, start: float, bucket_s: float, buckets: int, budget_s: float) -> list[int]:
        """Messages per bucket by report time (one range scan of its index)."""
        with self._read(snapshot=True) as conn, within(conn, budget_s):
            return details.volume(conn, start, bucket_s, buckets)

    def node_volume(
        self, start: float, bucket_s: float, buckets: int, budget_s: float
    ) -> dict[str, list[int]]:
        """Messages per node per bucket (one range scan, grouped)."""
        with self._read(snapshot=True) as conn, within(conn, budget_s):
            return details.node_volume(conn, start, bucket_s, buckets)

    def status_counts(self) -> dict[str, int]:
        """Messages per status (exact: the sums of the counter shards)."""
        with self._read() as conn:
            return details.status_counts(conn)

    def unread_count(self) -> int:
        """The number of unread messages."""
        with self._read() as conn:
            return details.unread(conn)

    def facets(self, limit: int) -> dict[str, list[str]]:
        """The distinct agents, nodes and roles (a loose index scan each)."""
        with self._read(snapshot=True) as conn:
            return {c: details.distinct(conn, c, limit) for c in ("agent_id", "node_id", "role")}

    def unindexed(self, limit: int) -> IndexChunk | None:  # noqa: ARG002 - the protocol names it
        """None: the search column is filled at insert, so the index never lacks a row."""
        return None

    @contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[Conn]:
        """A pooled connection (with `snapshot`, in one read-only repeatable-read
        transaction); a database failure becomes StoreUnavailable."""
        try:
            with self._pool.connection() as conn:
                if not snapshot:
                    yield conn
                    return
                with conn.transaction():
                    conn.execute(SNAPSHOT)
                    yield conn
        except pg_errors.QueryCanceled as exc:  # cancelled from outside, not by a budget
            raise QueryTooSlow(f"the cluster database cancelled the read: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the cluster database failed the read: {exc}") from exc


@contextmanager
def within(conn: Conn, budget_s: float) -> Iterator[None]:
    """Stop the statements of the block after `budget_s` seconds each (QueryTooSlow).

    The limit lasts until the transaction ends: a later step sets its own or runs first.
    """
    ms = MAX_TIMEOUT_MS if not math.isfinite(budget_s) else math.ceil(budget_s * 1000)
    conn.execute(TIMEOUT, (str(min(max(ms, 1), MAX_TIMEOUT_MS)),))
    try:
        yield
    except pg_errors.QueryCanceled as exc:
        raise QueryTooSlow(f"the query took longer than {budget_s:g} s") from exc


def count_within(conn: Conn, budget_s: float, sql: str, params: Sequence[Any]) -> int | None:
    """The single number `sql` answers, or None past `budget_s` seconds."""
    try:
        with conn.transaction(), within(conn, budget_s):  # a savepoint: the read goes on
            found = conn.execute(sql, params).fetchone()
    except QueryTooSlow:
        return None
    return int(found[0]) if found else 0


def _plain_rows(conn: Conn, query: InboxQuery, budget: ReadBudget) -> tuple[list[InboxRow], bool]:
    where, params = conditions(query)
    order = "DESC"
    if query.before is not None:
        where.append("(m.timestamp, m.id) < (%s::float8, %s::bigint)")
        params += [query.before.timestamp, query.before.id]
    elif query.after is not None:
        where.append("(m.timestamp, m.id) > (%s::float8, %s::bigint)")
        params += [query.after.timestamp, query.after.id]
        order = "ASC"
    sql = (
        f"SELECT {INBOX_COLUMNS} FROM messages m WHERE {_all(where)}"
        f" ORDER BY m.timestamp {order}, m.id {order} LIMIT %s"
    )
    return _fetch(conn, sql, params, budget, order)


def _search_rows(
    conn: Conn, query: InboxQuery, budget: ReadBudget, *, few: bool
) -> tuple[list[InboxRow], bool]:
    """A search page by id. With `few` matches (the capped count came in under its cap)
    the rows come from the full-text index and are sorted after: ordered by `m.id`, the
    planner may walk the whole primary key for a word it has no statistics for (a word in
    no message took 0.8 s at 1M rows; through the index, under a millisecond)."""
    where, params = _matching(query)
    order = "DESC"
    if query.before is not None:
        where.append("m.id < %s::bigint")
        params.append(query.before.id)
    elif query.after is not None:
        where.append("m.id > %s::bigint")
        params.append(query.after.id)
        order = "ASC"
    key = "m.id + 0" if few else "m.id"  # an expression no index gives in order
    sql = f"SELECT {INBOX_COLUMNS} FROM messages m WHERE {_all(where)}"
    sql += f" ORDER BY {key} {order} LIMIT %s"
    return _fetch(conn, sql, params, budget, order)


def _fetch(
    conn: Conn, sql: str, params: list[Any], budget: ReadBudget, order: str
) -> tuple[list[InboxRow], bool]:
    """Up to budget.rows rows, newest first, and whether more lie past them."""
    fetched = conn.execute(sql, [*params, budget.rows + 1]).fetchall()
    rows = [inbox_row(r) for r in fetched[: budget.rows]]
    if order == "ASC":
        rows.reverse()
    return rows, len(fetched) > budget.rows


def conditions(query: InboxQuery) -> tuple[list[str], list[Any]]:
    """WHERE terms for the query's filters; values are bound, column names are constants.

    A value PostgreSQL text cannot hold (a NUL) matches no stored row, rather than failing.
    """
    where: list[str] = []
    params: list[Any] = []
    if query.status == "inbox":
        where.append("m.status <> 'archived'")
    elif query.status != "all":
        where.append("m.status = %s")
        params.append(query.status)
    fields = (
        ("role", query.role),
        ("agent_id", query.agent_id),
        ("node_id", query.node_id),
        ("priority", query.priority),
    )
    for column, value in fields:
        if value is not None:
            where.append(f"m.{column} = %s")
            params.append(value)
    terms, times = time_window(query.since, query.until, "m.timestamp")
    where, params = where + terms, params + times
    if not all(storable(p) for p in params if isinstance(p, str)):
        return ["FALSE"], []
    return where, params


def _matching(query: InboxQuery) -> tuple[list[str], list[Any]]:
    """The query's filters and, when it has one, its search."""
    where, params = conditions(query)
    if query.search is not None:
        terms, values = search_terms(query.search)
        where, params = where + terms, params + values
    return where, params


def _still_shown(
    conn: Conn, msg_ids: Sequence[str], where: list[str], params: list[Any]
) -> dict[str, str]:
    """msg_id -> status of those of `msg_ids` the query's filters still admit (a search's
    terms are left out: content never changes, so a row that matched still does)."""
    wanted = [m for m in msg_ids if storable(m)]
    if not wanted:
        return {}
    sql = "SELECT m.msg_id, m.status FROM messages m WHERE m.msg_id = ANY(%s)"
    sql += "".join(f" AND {term}" for term in where)
    return {str(m): str(s) for m, s in conn.execute(sql, [wanted, *params])}


def _count_sql(query: InboxQuery, cap: int) -> tuple[str, list[Any]]:
    where, params = _matching(query)
    inner = f"SELECT 1 FROM messages m WHERE {_all(where)} LIMIT %s"
    return f"SELECT COUNT(*) FROM ({inner}) AS capped", [*params, cap]


def _all(where: Sequence[str]) -> str:
    return " AND ".join(where) or "TRUE"


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold `text` (a NUL it cannot: no stored value has one)."""
    return "\x00" not in text
