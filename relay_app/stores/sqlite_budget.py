"""Time budgets on SQLite reads: a progress handler interrupts what runs past its deadline."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from relay_app.errors import QueryTooSlow

T = TypeVar("T")
# SQLite virtual-machine steps between two looks at the clock.
STEPS = 2000


def within(conn: sqlite3.Connection, budget_s: float, read: Callable[[], T]) -> T:
    """`read()` on `conn`, interrupted after `budget_s` seconds (QueryTooSlow)."""
    deadline = time.monotonic() + budget_s
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), STEPS)
    try:
        return read()
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise QueryTooSlow(f"the query took longer than {budget_s:g} s") from exc
        raise
    finally:
        conn.set_progress_handler(None, 0)


def budgeted(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], budget_s: float
) -> list[Any]:
    """All rows of `sql`, or QueryTooSlow past `budget_s` seconds."""
    return within(conn, budget_s, lambda: conn.execute(sql, params).fetchall())


def budgeted_count(
    conn: sqlite3.Connection, budget_s: float, sql: str, params: Sequence[Any]
) -> int | None:
    """The single number `sql` answers, or None past `budget_s` seconds."""
    try:
        return int(budgeted(conn, sql, params, budget_s)[0][0])
    except QueryTooSlow:
        return None
