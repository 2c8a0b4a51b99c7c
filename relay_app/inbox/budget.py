"""Time budgets for the inbox's reads: a SQLite progress handler interrupts what runs over."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class QueryTooSlow(Exception):
    """A query ran out of its time budget and was interrupted."""


def within(conn: sqlite3.Connection, budget: float, read: Callable[[], T]) -> T:
    """`read()` on `conn`, interrupted after `budget` seconds (QueryTooSlow)."""
    deadline = time.monotonic() + budget
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 2000)
    try:
        return read()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise QueryTooSlow(f"the query took longer than {budget:g} s") from exc
        raise
    finally:
        conn.set_progress_handler(None, 0)


def budgeted(conn: sqlite3.Connection, sql: str, params: Sequence[Any], budget: float) -> list[Any]:
    """All rows of `sql`, or QueryTooSlow past `budget` seconds."""
    return within(conn, budget, lambda: conn.execute(sql, params).fetchall())


def budgeted_count(
    conn: sqlite3.Connection, budget: float, sql: str, params: Sequence[Any]
) -> int | None:
    """The single number `sql` answers, or None past `budget` seconds."""
    try:
        return int(budgeted(conn, sql, params, budget)[0][0])
    except QueryTooSlow:
        return None
