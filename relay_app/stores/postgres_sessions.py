"""Operator sessions on PostgreSQL (`inbox_sessions`, by the sha256 of the cookie token):
any relay on the database knows a login another relay opened."""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from relay_app.errors import StoreUnavailable
from relay_app.store_sessions import (
    EndSession,
    ExtendSession,
    OpenSession,
    SessionOp,
    SessionRecord,
)

UPSERT_SESSION = (
    "INSERT INTO inbox_sessions (token_sha256, user_name, csrf, expires, flash)"
    " VALUES (%s,%s,%s,%s,%s) ON CONFLICT (token_sha256) DO UPDATE SET"
    " user_name = excluded.user_name, csrf = excluded.csrf, expires = excluded.expires,"
    " flash = excluded.flash"
)
FIND = (
    "SELECT user_name, csrf, expires, flash FROM inbox_sessions"
    " WHERE token_sha256 = %s AND expires >= %s"
)


class PostgresSessions:
    """`SessionStore` on the store's pool."""

    def __init__(self, pool: ConnectionPool) -> None:
        """Read through `pool`."""
        self._pool = pool

    def find(self, token_sha256: str, now: float) -> SessionRecord | None:
        """The live session with this token hash, or None."""
        try:
            with self._pool.connection() as conn:
                row = conn.execute(FIND, (token_sha256, now)).fetchone()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the cluster database failed the read: {exc}") from exc
        return None if row is None else SessionRecord(row[0], row[1], float(row[2]), row[3])


def apply(conn: psycopg.Connection[TupleRow], op: SessionOp) -> int:
    """Apply one session op inside the writer's transaction; return the rows it changed."""
    if isinstance(op, OpenSession):
        return _open(conn, op)
    params: tuple[object, ...]
    if isinstance(op, ExtendSession):
        sql, params = (
            "UPDATE inbox_sessions SET expires = %s WHERE token_sha256 = %s AND expires < %s",
            (op.expires, op.token_sha256, op.expires),
        )
    elif isinstance(op, EndSession):
        sql, params = "DELETE FROM inbox_sessions WHERE token_sha256 = %s", (op.token_sha256,)
    else:
        sql, params = (
            "UPDATE inbox_sessions SET flash = %s WHERE token_sha256 = %s",
            (op.text, op.token_sha256),
        )
    return conn.execute(sql, params).rowcount


def _open(conn: psycopg.Connection[TupleRow], op: OpenSession) -> int:
    """Drop the expired, then the soonest to expire past the cap, then store the new one."""
    conn.execute("DELETE FROM inbox_sessions WHERE expires < %s", (op.now,))
    found = conn.execute("SELECT COUNT(*) FROM inbox_sessions").fetchone()
    excess = (int(found[0]) if found else 0) - op.max_sessions + 1
    if excess > 0:
        conn.execute(
            "DELETE FROM inbox_sessions WHERE token_sha256 IN"
            " (SELECT token_sha256 FROM inbox_sessions ORDER BY expires LIMIT %s)",
            (excess,),
        )
    r = op.record
    conn.execute(UPSERT_SESSION, (op.token_sha256, r.user, r.csrf, r.expires, r.flash))
    return 1
