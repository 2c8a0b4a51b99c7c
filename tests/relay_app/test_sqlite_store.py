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
from relay_app.stores.sqlite import SqliteStore
from relay_app.stores.sqlite_schema import MIGRATIONS
from tests.relay_app.store_contract.corpus import T0, put, rows


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
