"""Incremental reads on PostgreSQL that never skip a late commit (issue 15 item 3).

Why not "every row with id > the last id seen": with several writers, an id taken first
can commit last. Writer A takes id 7 and is still open when writer B takes id 8 and
commits; a poller reads 8 and moves its cursor past 7, and when A commits, row 7 sits
behind the cursor for ever. Nothing fails; a message is silently never delivered.

The watermark: every row records the transaction that stored it (`messages.xact`, an
`xid8` defaulting to `pg_current_xact_id()`). `pg_snapshot_xmin(pg_current_snapshot())`
is the oldest transaction id still running when the reading statement took its snapshot:
every transaction below it has ended, and a transaction that has not started yet, or not
yet written, will get a higher id. So a statement that serves only rows with
`xact < horizon` sees all of them that will ever exist, and the order `(xact, id)` of
those rows is final: a row the poller has passed can never appear behind it. The cursor
is that pair, `(xact, id)` of the last row served, behind an opaque string.

The horizon and the rows come from one statement, hence one snapshot: every row below
the horizon is committed (or rolled back) as that statement sees it. Call
`messages_after` on an autocommit connection (or commit between calls): inside one open
transaction the snapshot, and the horizon with it, would not move.

The cost: the horizon is held by the oldest transaction that has written anything, in
any database of the same server, and by prepared transactions. One long open transaction
delays delivery of everything stored after it began until it ends; it never loses a row.
Rows are served in (transaction, id) order, not in id order.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import TupleRow

from relay_app.stores.sqlite_rows import MESSAGE_COLUMNS, message_dict

# 16 bytes, (xact, id) as two big-endian unsigned 64-bit numbers, in unpadded base64url.
_PACK = struct.Struct(">QQ")
_ENCODED = re.compile(r"[A-Za-z0-9_-]{22}")
XACT_MAX = 2**64 - 1  # xid8 is unsigned 64-bit
ID_MAX = 2**63 - 1  # messages.id is a bigint
NOT_A_CURSOR = "not a follow cursor made by this relay"

HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
# One statement: the horizon and the rows share its snapshot. `xact` goes through text
# both ways (psycopg has no adapter for xid8); the comparison stays on the column, so an
# index on (xact, id) serves it.
FOLLOW = f"""
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT m.xact::text, {MESSAGE_COLUMNS}
FROM messages m, horizon h
WHERE m.xact < h.xmin AND (m.xact, m.id) > (%s::text::xid8, %s){{recipients}}
ORDER BY m.xact, m.id
LIMIT %s
"""
FOLLOW_ALL = FOLLOW.format(recipients="")
FOLLOW_TO = FOLLOW.format(recipients=" AND m.recipient = ANY(%s)")


class FollowCursor(NamedTuple):
    """Where a follower stands: the (xact, id) of the last row it was served."""

    xact: int
    id: int

    def encode(self) -> str:
        """The cursor as an opaque URL-safe string (22 characters)."""
        return base64.urlsafe_b64encode(_PACK.pack(self.xact, self.id)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> FollowCursor:
        """Inverse of `encode`; ValueError for any string `encode` would not make."""
        if not isinstance(text, str) or not _ENCODED.fullmatch(text):
            raise ValueError(NOT_A_CURSOR)
        try:
            xact, row_id = _PACK.unpack(base64.urlsafe_b64decode(text + "=="))
        except (binascii.Error, struct.error) as exc:
            raise ValueError(NOT_A_CURSOR) from exc
        cursor = cls(xact, row_id)
        # 22 characters carry 132 bits: only one spelling of the 128 is accepted.
        if row_id > ID_MAX or cursor.encode() != text:
            raise ValueError(NOT_A_CURSOR)
        return cursor


START = FollowCursor(0, 0)  # before every row


def visible_horizon(conn: psycopg.Connection[TupleRow]) -> int:
    """The xid8 below which no transaction can still commit, as an int."""
    row = conn.execute(HORIZON).fetchone()
    if row is None:  # pragma: no cover - a SELECT of one value always returns a row
        raise RuntimeError("pg_current_snapshot returned no row")
    return int(row[0])


def messages_after(
    conn: psycopg.Connection[TupleRow],
    cursor: FollowCursor,
    limit: int,
    recipients: Sequence[str] | None = None,
) -> tuple[list[tuple[FollowCursor, dict[str, Any]]], FollowCursor]:
    """Up to `limit` messages past `cursor` and below the horizon, in (xact, id) order.

    Each comes with its own cursor; the second value is where to read next (the last
    row's cursor, or `cursor` itself when nothing new is visible). With `recipients`,
    only messages addressed to one of them (none, for an empty list).
    """
    if limit < 1:
        raise ValueError("limit: expected a positive integer")
    if not 0 <= cursor.xact <= XACT_MAX or not 0 <= cursor.id <= ID_MAX:
        raise ValueError(f"cursor out of range: {cursor!r}")
    params: list[Any] = [str(cursor.xact), cursor.id]
    if recipients is None:
        sql = FOLLOW_ALL
    else:
        sql = FOLLOW_TO
        params.append(list(recipients))
    rows = conn.execute(sql, [*params, limit]).fetchall()
    page = [(FollowCursor(int(row[0]), row[1]), message_dict(row[1:])) for row in rows]
    return page, page[-1][0] if page else cursor
