"""The inbox's writes on PostgreSQL: status moves, the audit trail and the status counts,
applied inside the writer's transaction."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow

from relay_app.store_inbox import RecordAudit, SetStatuses
from relay_app.stores.postgres_schema import COUNT_SHARDS

INSERT_AUDIT = (
    "INSERT INTO inbox_audit (msg_id, action, user_name, at, detail) VALUES (%s,%s,%s,%s,%s)"
)
# The old status comes from the locked row itself, so two relays moving one message at
# once count the move once: the second sees the first's status and skips the row.
MOVE = """
WITH old AS (
    SELECT id, status FROM messages
    WHERE msg_id = ANY(%s) AND status = ANY(%s) ORDER BY id FOR UPDATE
)
UPDATE messages m SET status = %s FROM old
WHERE m.id = old.id AND m.status = old.status
RETURNING m.msg_id, old.status
"""
ADD_TO_COUNT = "UPDATE inbox_counts SET n = n + %s WHERE status = %s AND shard = %s"

Conn = psycopg.Connection[TupleRow]


def count_shard(conn: Conn) -> int:
    """The counter shard of this connection: one per server process, so writers differ."""
    return conn.info.backend_pid % COUNT_SHARDS


def add_to_count(conn: Conn, status: str, delta: int) -> None:
    """Add `delta` messages to a status's count (on this connection's shard)."""
    if delta:
        conn.execute(ADD_TO_COUNT, (delta, status, count_shard(conn)))


def set_statuses(conn: Conn, op: SetStatuses) -> int:
    """Move the messages whose status allows it; audit and count each move; return how many."""
    moved = conn.execute(MOVE, (list(op.msg_ids), list(op.from_statuses), op.status)).fetchall()
    left: dict[str, int] = {}
    for _, old in moved:
        left[old] = left.get(old, 0) + 1
    for old, n in sorted(left.items()):
        add_to_count(conn, old, -n)
    add_to_count(conn, op.status, len(moved))
    if op.audit is not None:
        record_audit(conn, RecordAudit(op.audit, tuple((m, None) for m, _ in moved)))
    return len(moved)


def record_audit(conn: Conn, op: RecordAudit) -> int:
    """Add the audit entries; return how many."""
    a = op.audit
    with conn.cursor() as cur:
        cur.executemany(
            INSERT_AUDIT, [(m, a.action, a.user, a.at, detail) for m, detail in op.entries]
        )
    return len(op.entries)
