"""The node API's reads on PostgreSQL: pages of GET /query/messages, one message, mail.

Each function takes an autocommit connection of the store's pool and mirrors its
namesake in `relay_app.stores.sqlite`: the same order, cursors and page cuts. Mail is the
one incremental read, so it is served below the watermark (`postgres_follow`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from relay_app.store import FILTER_FIELDS, FileRecord, MessagePage, MessageQuery
from relay_app.stores.postgres_follow import follow
from relay_app.stores.sqlite_rows import (
    FILE_COLUMNS,
    MESSAGE_COLUMNS,
    agents,
    bounded_page,
    message_dict,
)

Conn = psycopg.Connection[TupleRow]
_FILTER_COLUMNS = frozenset(FILTER_FIELDS.values())
MAIL_COLUMNS = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))


def query_messages(conn: Conn, query: MessageQuery) -> MessagePage:
    """One page in (timestamp, id) order and the total; the cursor is a row id."""
    where, params = _where(query)
    order = "DESC" if query.descending else "ASC"
    total = conn.execute(f"SELECT COUNT(*) FROM messages WHERE {where}", params).fetchone()
    keyset, keyset_params = _keyset(conn, query)
    sql = (
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where}{keyset}"
        f" ORDER BY timestamp {order}, id {order} LIMIT %s OFFSET %s"
    )
    with conn.cursor() as cur:
        rows = cur.execute(sql, [*params, *keyset_params, query.limit + 1, query.offset])
        page, has_more = bounded_page(rows, query.limit)
    return MessagePage(
        messages=[message for _, message in page],
        total=int(total[0]) if total else 0,
        last_id=page[-1][0] if page else None,
        ids=[row_id for row_id, _ in page],
        last_ts=float(page[-1][1]["timestamp"]) if page else None,
        has_more=has_more,
    )


def get_message(conn: Conn, msg_id: str) -> dict[str, Any] | None:
    """One message by msg_id, or None."""
    sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE msg_id = %s"
    row = conn.execute(sql, (msg_id,)).fetchone()
    return None if row is None else message_dict(row)


def mail_after(
    conn: Conn, recipients: Sequence[str], position: int, limit: int, offset: int
) -> list[tuple[int, dict[str, Any]]]:
    """Mail to `recipients` past `position`, below the watermark, oldest transaction first.

    Each message comes with the position past it: the last one's is the poll's cursor.
    """
    followed = follow(
        conn,
        position,
        limit,
        offset,
        columns=MAIL_COLUMNS,
        where=" AND m.recipient = ANY(%s)",
        params=[list(recipients)],
    )
    return [(r[0], message_dict(r[1:])) for r in followed.rows]


def node_statuses(conn: Conn) -> list[dict[str, Any]]:
    """Every node's last report, by node id."""
    rows = conn.execute(
        "SELECT node_id, sent_at, received_at, agents FROM node_status ORDER BY node_id"
    ).fetchall()
    return [
        {"node_id": n, "sent_at": s, "received_at": r, "agents": agents(a)} for n, s, r, a in rows
    ]


def get_file(conn: Conn, file_id: str) -> FileRecord | None:
    """A file's metadata, or None."""
    row = conn.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE file_id = %s", (file_id,))
    found = row.fetchone()
    return None if found is None else FileRecord(*found)


def _keyset(conn: Conn, query: MessageQuery) -> tuple[str, list[Any]]:
    """Terms keeping a page strictly past the cursor's row in (timestamp, id) order.

    The cursor names a row id; a row since deleted is placed at the timestamp of the
    nearest row stored before it.
    """
    if query.after_id is None:
        return "", []
    ts = query.after_ts if query.after_ts is not None else _cursor_time(conn, query.after_id)
    if query.descending:
        return " AND (timestamp, id) < (%s, %s)", [ts, query.after_id]
    return " AND (timestamp, id) > (%s, %s)", [ts, query.after_id]


def _cursor_time(conn: Conn, after_id: int) -> float:
    """The report time of the cursor's row, or of the nearest row stored before it."""
    found = conn.execute(
        "SELECT timestamp FROM messages WHERE id <= %s ORDER BY id DESC LIMIT 1",
        (after_id,),
    ).fetchone()
    return float(found[0]) if found else -math.inf


def _where(query: MessageQuery) -> tuple[str, list[Any]]:
    """The WHERE clause; column names come from FILTER_FIELDS only, values are bound."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in query.filters:
        if column not in _FILTER_COLUMNS:
            raise ValueError(f"not a filterable column: {column!r}")
        clauses.append(f"{column} = ANY(%s)")
        params.append(list(values))
    terms, times = time_window(query.since, query.until, "timestamp")
    return " AND ".join(clauses + terms) or "TRUE", params + times


def time_window(
    since: float | None, until: float | None, column: str
) -> tuple[list[str], list[float]]:
    """WHERE terms for `since <= column < until`, each bound given; `column` is a constant."""
    terms: list[str] = []
    values: list[float] = []
    if since is not None:
        terms.append(f"{column} >= %s::float8")
        values.append(since)
    if until is not None:
        terms.append(f"{column} < %s::float8")
        values.append(until)
    return terms, values
