"""The inbox's writes on SQLite: status moves (`messages.status`) and the audit trail
(`inbox_audit`), applied inside the writer's transaction."""

from __future__ import annotations

import sqlite3

from relay_app.store_inbox import RecordAudit, SetStatuses

INSERT_AUDIT = "INSERT INTO inbox_audit (msg_id, action, user_name, at, detail) VALUES (?,?,?,?,?)"
# Bound on the ids in one IN (...) list (SQLite's limit on bound parameters is far higher).
IN_CHUNK = 500


def set_statuses(conn: sqlite3.Connection, op: SetStatuses) -> int:
    """Move the messages whose status allows it; audit each one moved; return how many."""
    changed: list[str] = []
    allowed = ",".join("?" * len(op.from_statuses))
    for i in range(0, len(op.msg_ids), IN_CHUNK):
        ids = op.msg_ids[i : i + IN_CHUNK]
        cursor = conn.execute(
            f"UPDATE messages SET status = ? WHERE msg_id IN ({','.join('?' * len(ids))})"
            f" AND status IN ({allowed}) RETURNING msg_id",
            (op.status, *ids, *op.from_statuses),
        )
        changed.extend(row[0] for row in cursor.fetchall())
    if op.audit is not None:
        record_audit(conn, RecordAudit(op.audit, tuple((m, None) for m in changed)))
    return len(changed)


def record_audit(conn: sqlite3.Connection, op: RecordAudit) -> int:
    """Add the audit entries; return how many."""
    a = op.audit
    conn.executemany(
        INSERT_AUDIT, [(m, a.action, a.user, a.at, detail) for m, detail in op.entries]
    )
    return len(op.entries)
