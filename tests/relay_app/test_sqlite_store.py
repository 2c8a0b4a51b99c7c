"""What only the SQLite store promises: its schema's version, and time budgets that stop a
read on a progress handler (the contract suite holds what every engine promises)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_app.errors import QueryTooSlow
from relay_app.store import MessageQuery
from relay_app.store_inbox import InboxQuery, ReadBudget
from relay_app.stores.sqlite import DB_RELATIVE_PATH, INSERT_MESSAGE, SqliteStore
from relay_app.stores.sqlite_schema import ID_ORDER_INDEXES, MIGRATIONS, ONE_ORDER_INDEXES
from runtime.core import sqlite as rsqlite
from tests.relay_app.store_contract.corpus import T0, budget, put, row, rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A SQLite store in tmp_path."""
    store = SqliteStore(tmp_path)
    yield store
    store.close()


def version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_the_schema_is_migrated_once_and_reopening_keeps_the_data(
    tmp_path: Path, store: SqliteStore
) -> None:
    writer = store.open_writer()
    put(writer, rows(2))
    writer.close()
    assert version(store.path) == len(MIGRATIONS)
    again = SqliteStore(tmp_path)
    try:
        assert again.query_messages(MessageQuery()).total == 2
        assert version(store.path) == len(MIGRATIONS)
    finally:
        again.close()


def test_past_its_budget_a_count_is_none_and_a_chart_raises_and_the_next_read_is_whole(
    store: SqliteStore,
) -> None:
    writer = store.open_writer()
    put(writer, rows(3000, step=0.5))
    writer.close()
    no_time = ReadBudget(rows=10, count_cap=10_000, rows_s=30.0, count_s=0.0)
    assert store.inbox.page(InboxQuery(), no_time).total is None
    with pytest.raises(QueryTooSlow):
        store.inbox.volume(T0, 60.0, 30, 0.0)
    # The budget left with the read: the same connection answers the next one in full.
    whole = ReadBudget(rows=10, count_cap=10_000, rows_s=30.0, count_s=30.0)
    assert store.inbox.page(InboxQuery(), whole).total == 3000
    assert sum(store.inbox.volume(T0, 60.0, 30, 30.0)) == 3000


def test_a_database_of_the_id_order_schema_upgrades_and_its_cursors_still_page(
    tmp_path: Path,
) -> None:
    # A relay of schema 6 stored these, out of report-time order, and archived one.
    path = tmp_path / DB_RELATIVE_PATH
    conn = rsqlite.connect(path)
    rsqlite.migrate(conn, MIGRATIONS[:6])
    stored = [row(T0 + t, agent=f"a{t % 2}") for t in (5, 1, 4, 2, 3)]
    with rsqlite.transaction(conn):
        conn.executemany(INSERT_MESSAGE, [(*r, T0) for r in stored])
        conn.execute("UPDATE messages SET status = 'archived' WHERE id = 1")
    conn.close()
    store = SqliteStore(tmp_path)
    try:
        assert version(path) == len(MIGRATIONS)
        check = sqlite3.connect(path)
        indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"
        names = {n for (n,) in check.execute(indexes)}
        check.close()
        assert names == set(ONE_ORDER_INDEXES)
        assert not names & set(ID_ORDER_INDEXES)
        by_time = [r.msg_id for r in sorted(stored, key=lambda r: r.timestamp, reverse=True)]
        page = store.query_messages(MessageQuery(limit=2))
        assert [m["msg_id"] for m in page.messages] == by_time[:2]
        # A cursor is a row id, minted before the upgrade or after: the walk goes on from it.
        rest = store.query_messages(MessageQuery(after_id=page.last_id))
        assert [m["msg_id"] for m in rest.messages] == by_time[2:]
        assert store.inbox.status_counts() == {"unread": 4, "acknowledged": 0, "archived": 1}
        inbox = store.inbox.page(InboxQuery(), budget())
        assert [r.msg_id for r in inbox.rows] == [m for m in by_time if m != stored[0].msg_id]
    finally:
        store.close()


def test_a_cursor_whose_row_is_gone_resumes_from_the_row_stored_before_it(
    store: SqliteStore,
) -> None:
    writer = store.open_writer()
    put(writer, rows(6))
    writer.close()
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("DELETE FROM messages WHERE id = 4")
    conn.close()
    older = store.query_messages(MessageQuery(after_id=4))
    assert [m["timestamp"] for m in older.messages] == [T0 + 2, T0 + 1, T0]
    newer = store.query_messages(MessageQuery(after_id=4, descending=False))
    assert [m["timestamp"] for m in newer.messages] == [T0 + 4, T0 + 5]
