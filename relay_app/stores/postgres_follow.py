"""Incremental reads on PostgreSQL that never skip a late commit.

Why not "every row with id > the last id seen": with several writers, an id taken first
can commit last. Writer A takes id 7 and is still open when writer B takes id 8 and
commits; a poller reads 8 and moves its cursor past 7, and when A commits, row 7 sits
behind the cursor for ever. Nothing fails; a message is silently never delivered.

The watermark: every row records the transaction that stored it (`messages.xact`, an
`xid8` defaulting to `pg_current_xact_id()`). `pg_snapshot_xmin(pg_current_snapshot())`
is the oldest transaction id still running: every transaction below it has ended, and
one that has not started yet, or not yet written, will get a higher id. Rows with
`xact < horizon` are therefore all there will ever be, and their order `(xact, id)` is
final: a row a poller has passed can never appear behind it. The horizon is read first;
rows read below it by a later statement (a later snapshot) are still all of them.

The cursor a client holds stays one integer, as on SQLite (the node's mail cursor, the
inbox's watermark), called a position here: for a row of transaction X,
offset + X * SPAN + (id - first id of X) + 1, where `commits` records each transaction's
first id when it stores messages. Positions grow in (xact, id) order, so a page can end
on any row, and offset + X * SPAN + SPAN - 1 stands past all of X. Rows copied from
SQLite by `commander-relay migrate` keep their ids and get xact 0: their position is
their id, and `offset` (stored in `store_meta`) is the largest id copied, so a cursor a
node got from the SQLite relay goes on from the same row. A transaction's ids span less
than SPAN (the writer checks), and xid8 stays below 2**62 / SPAN (2**40 transactions).

The cost: the horizon is held by the oldest transaction that has written anything, in
any database of the same server, and by prepared transactions. One long open transaction
delays delivery of everything stored after it began until it ends; it never loses a row.
Rows are served in (transaction, id) order, not in id order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import TupleRow

ID_MAX = 2**63 - 1  # messages.id is a bigint
POSITION_MAX = 2**62  # the largest cursor a node may send (relay_app.mail)
SPAN = 2**22  # positions per transaction
OFFSET_KEY = "mail_offset"

HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"
READ_OFFSET = "SELECT value FROM store_meta WHERE key = %s"
FIRST_ID = "SELECT first_id FROM commits WHERE xact = %s::text::xid8"
# `xact` goes through text both ways (psycopg has no adapter for xid8); the comparison
# stays on the column, so the (xact, id) indexes serve it.
FOLLOW = """
SELECT m.xact::text, c.first_id, {columns} FROM messages m
LEFT JOIN commits c ON c.xact = m.xact
WHERE m.xact < %s::text::xid8 AND (m.xact, m.id) > (%s::text::xid8, %s){where}
ORDER BY m.xact, m.id LIMIT %s
"""


class Spot(NamedTuple):
    """Where a follower stands in (xact, id) order: past every row up to this pair."""

    xact: int
    id: int


class Followed(NamedTuple):
    """A page read below the horizon: its rows, each (position, *asked columns), and the
    position to read on from."""

    rows: list[tuple[Any, ...]]
    position: int


def read_offset(conn: psycopg.Connection[TupleRow]) -> int:
    """The position offset of this database (0 unless a SQLite corpus was copied in)."""
    found = conn.execute(READ_OFFSET, (OFFSET_KEY,)).fetchone()
    return int(found[0]) if found else 0


def spot_of(conn: psycopg.Connection[TupleRow], position: int, offset: int) -> Spot:
    """The (xact, id) pair a client's position stands for."""
    if position <= offset:
        return Spot(0, position)
    xact, step = divmod(position - offset, SPAN)
    if step == SPAN - 1:
        return Spot(xact, ID_MAX)
    if step == 0:
        return Spot(xact, 0)
    found = conn.execute(FIRST_ID, (str(xact),)).fetchone()
    if found is None:  # no messages in that transaction: nothing of it to skip
        return Spot(xact, 0)
    return Spot(xact, int(found[0]) + step - 1)


def position_of(xact: int, row_id: int, first_id: int | None, offset: int) -> int:
    """The position of a row (a copied row's own id)."""
    if xact == 0 or first_id is None:
        return row_id
    return offset + xact * SPAN + row_id - first_id + 1


def visible_horizon(conn: psycopg.Connection[TupleRow]) -> int:
    """The xid8 below which no transaction can still commit, as an int."""
    row = conn.execute(HORIZON).fetchone()
    if row is None:  # pragma: no cover - a SELECT of one value always returns a row
        raise RuntimeError("pg_current_snapshot returned no row")
    return int(row[0])


def horizon_position(conn: psycopg.Connection[TupleRow], offset: int) -> int:
    """The position past every row a reader can see now, and every row before them."""
    return offset + visible_horizon(conn) * SPAN - 1


def follow(
    conn: psycopg.Connection[TupleRow],
    position: int,
    limit: int,
    offset: int,
    *,
    columns: str,
    where: str = "",
    params: Sequence[Any] = (),
) -> Followed:
    """Up to `limit` rows past `position` and below the horizon, in (xact, id) order.

    `columns` (over `m`) must start with `m.id`. `where` (" AND ..." over `m`, with
    `params`) narrows the rows; when fewer than
    `limit` match, the position still moves up to the horizon, so a narrow follower's
    next read starts near the head.
    """
    if limit < 1:
        raise ValueError("limit: expected a positive integer")
    if not 0 <= position <= POSITION_MAX:
        raise ValueError(f"position out of range: {position!r}")
    horizon = visible_horizon(conn)
    spot = spot_of(conn, position, offset)
    sql = FOLLOW.format(columns=columns, where=where)
    found = conn.execute(sql, [str(horizon), str(spot.xact), spot.id, *params, limit])
    rows = [(position_of(int(r[0]), r[2], r[1], offset), *r[2:]) for r in found.fetchall()]
    if len(rows) == limit:
        return Followed(rows, rows[-1][0])
    return Followed(rows, max(position, offset + horizon * SPAN - 1))
