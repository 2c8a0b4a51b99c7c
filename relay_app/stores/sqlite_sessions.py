"""Operator sessions on SQLite (`inbox_sessions`, by the sha256 of the cookie token)."""

from __future__ import annotations

import sqlite3

from relay_app.store_sessions import (
    EndSession,
    ExtendSession,
    OpenSession,
    SessionOp,
    SessionRecord,
)
from relay_app.stores.sqlite_pool import ReadPool

INSERT_SESSION = (
    "INSERT OR REPLACE INTO inbox_sessions (token_sha256, user_name, csrf, expires, flash)"
    " VALUES (?,?,?,?,?)"
)


class SqliteSessions:
    """`SessionStore` on the store's read pool."""

    def __init__(self, pool: ReadPool) -> None:
        """Read through `pool`."""
        self._pool = pool

    def find(self, token_sha256: str, now: float) -> SessionRecord | None:
        """The live session with this token hash, or None."""
        with self._pool.read() as conn:
            row = conn.execute(
                "SELECT user_name, csrf, expires, flash FROM inbox_sessions"
                " WHERE token_sha256 = ? AND expires >= ?",
                (token_sha256, now),
            ).fetchone()
        return None if row is None else SessionRecord(row[0], row[1], float(row[2]), row[3])


def apply(conn: sqlite3.Connection, op: SessionOp) -> int:
    """Apply one session op inside the writer's transaction; return the rows it changed."""
    if isinstance(op, OpenSession):
        return _open(conn, op)
    params: tuple[object, ...]
    if isinstance(op, ExtendSession):
        sql, params = (
            "UPDATE inbox_sessions SET expires = ? WHERE token_sha256 = ? AND expires < ?",
            (op.expires, op.token_sha256, op.expires),
        )
    elif isinstance(op, EndSession):
        sql, params = "DELETE FROM inbox_sessions WHERE token_sha256 = ?", (op.token_sha256,)
    else:
        sql, params = (
            "UPDATE inbox_sessions SET flash = ? WHERE token_sha256 = ?",
            (op.text, op.token_sha256),
        )
    return conn.execute(sql, params).rowcount


def _open(conn: sqlite3.Connection, op: OpenSession) -> int:
    """Drop the expired, then the soonest to expire past the cap, then store the new one."""
    conn.execute("DELETE FROM inbox_sessions WHERE expires < ?", (op.now,))
    count = int(conn.execute("SELECT COUNT(*) FROM inbox_sessions").fetchone()[0])
    excess = count - op.max_sessions + 1
    if excess > 0:
        conn.execute(
            "DELETE FROM inbox_sessions WHERE token_sha256 IN"
            " (SELECT token_sha256 FROM inbox_sessions ORDER BY expires LIMIT ?)",
            (excess,),
        )
    r = op.record
    conn.execute(INSERT_SESSION, (op.token_sha256, r.user, r.csrf, r.expires, r.flash))
    return 1
