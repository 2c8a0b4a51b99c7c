"""The inbox's smaller reads on PostgreSQL: one message, its thread, audit trail and files,
executions, the charts' buckets, the status counts and the facet lists.

Each takes a connection already in the read's transaction (`postgres_inbox`) and means
what its namesake in `sqlite_inbox_details` means.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.rows import TupleRow

from relay_app.store_inbox import AttachedFile, AuditRecord, InboxRow, ThreadMessage
from relay_app.stores.sqlite_rows import INBOX_COLUMNS, inbox_row, parsed_content

Conn = psycopg.Connection[TupleRow]
# The columns a facet lists (pasted into the SQL, so only these).
FACET_COLUMNS = frozenset({"agent_id", "node_id", "role"})
# trunc, as SQLite's CAST(... AS INTEGER); ::bigint alone would round.
BUCKET = "trunc((timestamp - %s::float8) / %s::float8)::bigint"


def message(conn: Conn, msg_id: str) -> InboxRow | None:
    """One message by msg_id, or None."""
    found = conn.execute(f"SELECT {INBOX_COLUMNS} FROM messages m WHERE m.msg_id = %s", (msg_id,))
    row = found.fetchone()
    return None if row is None else inbox_row(row)


def later_messages(conn: Conn, msg_id: str, limit: int) -> list[ThreadMessage]:
    """Up to `limit` messages stored after `msg_id` that its agent sent or received."""
    found = conn.execute("SELECT id, agent_id FROM messages WHERE msg_id = %s", (msg_id,))
    root = found.fetchone()
    if root is None:
        return []
    rows = conn.execute(
        "SELECT msg_id, agent_id, sender, recipient, timestamp, content FROM messages"
        " WHERE id > %s AND (agent_id = %s OR recipient = %s) ORDER BY id LIMIT %s",
        (root[0], root[1], root[1], limit),
    )
    return [
        ThreadMessage(found, agent_id, sender, recipient, timestamp, parsed_content(blob))
        for found, agent_id, sender, recipient, timestamp, blob in rows
    ]


def audit_trail(conn: Conn, msg_id: str, limit: int) -> tuple[list[AuditRecord], int]:
    """The newest `limit` entries of a message, newest first, and how many it has in all."""
    rows = conn.execute(
        "SELECT action, user_name, at, detail FROM inbox_audit WHERE msg_id = %s"
        " ORDER BY id DESC LIMIT %s",
        (msg_id, limit),
    ).fetchall()
    total = len(rows)
    if total == limit:
        found = conn.execute("SELECT COUNT(*) FROM inbox_audit WHERE msg_id = %s", (msg_id,))
        counted = found.fetchone()
        total = int(counted[0]) if counted else total
    return [AuditRecord(str(a), str(u), float(t), d) for a, u, t, d in rows], total


def attached_files(conn: Conn, msg_id: str) -> list[AttachedFile]:
    """The files its own agent attached to a message (another agent's are not its own)."""
    rows = conn.execute(
        "SELECT f.file_id, f.filename, f.size, f.sha256 FROM files f"
        " JOIN messages m ON m.msg_id = f.msg_id"
        " AND m.node_id = f.node_id AND m.agent_id = f.agent_id"
        " WHERE f.msg_id = %s ORDER BY f.received_at",
        (msg_id,),
    ).fetchall()
    return [AttachedFile(f, n, int(s), h) for f, n, s, h in rows]


def executed(conn: Conn, msg_ids: Sequence[str]) -> dict[str, str]:
    """report msg_id -> its follow-up's msg_id, for the reports Execute was run on."""
    if not msg_ids:
        return {}
    rows = conn.execute(
        "SELECT msg_id, detail FROM inbox_audit"
        " WHERE action = 'execute' AND detail IS NOT NULL AND msg_id = ANY(%s)",
        (list(msg_ids),),
    )
    return {str(m): str(d) for m, d in rows}


def volume(conn: Conn, start: float, bucket_s: float, buckets: int) -> list[int]:
    """Messages per bucket by report time (one range scan of its index)."""
    counts = [0] * buckets
    rows = conn.execute(
        f"SELECT {BUCKET} AS b, COUNT(*) FROM messages"
        " WHERE timestamp >= %s::float8 AND timestamp < %s::float8 GROUP BY b",
        (start, bucket_s, start, start + buckets * bucket_s),
    )
    for bucket, n in rows:
        if 0 <= bucket < buckets:
            counts[bucket] = int(n)
    return counts


def node_volume(conn: Conn, start: float, bucket_s: float, buckets: int) -> dict[str, list[int]]:
    """Messages per node per bucket (one range scan, grouped)."""
    found: dict[str, list[int]] = {}
    rows = conn.execute(
        f"SELECT node_id, {BUCKET} AS b, COUNT(*) FROM messages"
        " WHERE timestamp >= %s::float8 AND timestamp < %s::float8 GROUP BY node_id, b",
        (start, bucket_s, start, start + buckets * bucket_s),
    )
    for node_id, bucket, n in rows:
        counts = found.setdefault(str(node_id), [0] * buckets)
        if 0 <= bucket < buckets:
            counts[bucket] = int(n)
    return found


def status_counts(conn: Conn) -> dict[str, int]:
    """Messages per status: the sum of its shards."""
    rows = conn.execute("SELECT status, SUM(n) FROM inbox_counts GROUP BY status").fetchall()
    return {str(status): int(n) for status, n in rows}


def unread(conn: Conn) -> int:
    """The number of unread messages (the sum of its shards)."""
    found = conn.execute("SELECT SUM(n) FROM inbox_counts WHERE status = 'unread'").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def distinct(conn: Conn, column: str, limit: int) -> list[str]:
    """Up to `limit` distinct values of a column, in order: a loose index scan, one index
    descent per value, since PostgreSQL has no skip-scan of its own to do it."""
    if column not in FACET_COLUMNS:
        raise ValueError(f"not a facet column: {column!r}")
    sql = (
        f"WITH RECURSIVE d(v) AS (SELECT MIN({column}) FROM messages UNION ALL"
        f" SELECT (SELECT MIN({column}) FROM messages WHERE {column} > d.v) FROM d"
        " WHERE d.v IS NOT NULL) SELECT v FROM d WHERE v IS NOT NULL LIMIT %s"
    )
    return [str(v) for (v,) in conn.execute(sql, (limit,))]
