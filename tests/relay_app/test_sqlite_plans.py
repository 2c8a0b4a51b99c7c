"""Every filtered read of the SQLite store is driven by an index, and the node API and the
inbox share one order: EXPLAIN QUERY PLAN of the SQL the store really runs.

The statements are caught with a trace callback on the store's read connection while
the store's own methods run, so a change of SQL is checked as it ships. The database has
no ANALYZE statistics, like a relay's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relay_app.store import FILTER_FIELDS, MessageQuery
from relay_app.store_inbox import Cursor, InboxQuery, ReadBudget
from relay_app.stores.sqlite import SqliteStore
from relay_app.stores.sqlite_schema import ARCHIVE_GUARD, COUNTER_TRIGGERS, ONE_ORDER_INDEXES
from tests.relay_app.store_contract.corpus import T0, put, row

BUDGET = ReadBudget(rows=50, count_cap=1000, rows_s=30.0, count_s=30.0)
# The one filter whose index keeps arrival order: mail polls a recipient's messages by id.
SORTED_FILTERS = {"recipient"}
# msg_id and sender: a msg_id is unique (its own index); sender is no inbox filter and
# the API's sender filter walks the shared order (no index of its own to keep up).
UNINDEXED_FILTERS = {"sender"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A store holding a few messages of two agents, nodes and recipients."""
    store = SqliteStore(tmp_path)
    writer = store.open_writer()
    put(writer, [row(T0 + i, agent=f"a{i % 2}", recipient=f"r{i % 3}", role="coder",
                     task_id=f"t{i % 4}") for i in range(40)])  # fmt: skip
    writer.close()
    yield store
    store.close()


def plans(store: SqliteStore, read: Callable[[], object]) -> list[tuple[str, list[str]]]:
    """Each statement `read` ran on the store, with its query plan."""
    store.inbox.unread_count()  # opens the pool's connection
    (conn,) = store._pool._all  # the test looks inside the store on purpose
    caught: list[str] = []
    conn.set_trace_callback(caught.append)
    try:
        read()
    finally:
        conn.set_trace_callback(None)
    explain = sqlite3.connect(store.path)
    try:
        statements = [s for s in caught if s.lstrip().upper().startswith(("SELECT", "WITH"))]
        return [(s, [str(r[3]) for r in explain.execute(f"EXPLAIN QUERY PLAN {s}")])
                for s in statements]  # fmt: skip
    finally:
        explain.close()


def full_scans(found: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The statements reading `messages` by a scan rather than an index search.

    A walk of idx_inbox_live is no scan: the partial index holds only the view's rows.
    """
    return [(s, p) for s, p in found
            if any(st.startswith("SCAN m") and "idx_inbox_live" not in st for st in p)]  # fmt: skip


def sorted_pages(found: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """The statements that sort their rows after reading them."""
    return [(s, p) for s, p in found if any("TEMP B-TREE FOR ORDER BY" in st for st in p)]


@pytest.mark.parametrize("field", sorted(set(FILTER_FIELDS.values()) - UNINDEXED_FILTERS))
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("window", [False, True])
def test_each_api_filter_reads_its_page_through_one_index_in_the_shared_order(
    store: SqliteStore, field: str, descending: bool, window: bool
) -> None:
    value = {"priority": "normal", "status": "unread"}.get(field, "x")
    since = T0 + 5 if window else None
    first = MessageQuery(filters=((field, (value,)),), since=since, descending=descending)
    found = plans(store, lambda: store.query_messages(first))
    cursor = MessageQuery(first.filters, since=since, descending=descending, after_id=20)
    found += plans(store, lambda: store.query_messages(cursor))
    assert found
    assert not full_scans(found), found
    if field not in SORTED_FILTERS:
        assert not sorted_pages(found), found


@pytest.mark.parametrize("descending", [True, False])
def test_an_unfiltered_api_page_and_a_time_window_need_no_sort(
    store: SqliteStore, descending: bool
) -> None:
    for query in (MessageQuery(descending=descending, after_id=20),
                  MessageQuery(since=T0 + 5, until=T0 + 30, descending=descending)):  # fmt: skip
        found = plans(store, lambda q=query: store.query_messages(q))  # type: ignore[misc]
        assert not sorted_pages(found), found
    windowed = plans(store, lambda: store.query_messages(MessageQuery(since=T0 + 5)))
    assert not full_scans(windowed), windowed


VIEWS = [
    InboxQuery(status="unread"),
    InboxQuery(status="acknowledged"),
    InboxQuery(status="archived"),
    InboxQuery(role="coder"),
    InboxQuery(agent_id="a1"),
    InboxQuery(node_id="node-a"),
    InboxQuery(priority="high"),
    InboxQuery(agent_id="a1", since=T0 + 5),
    InboxQuery(status="unread", before=Cursor(T0 + 20, 21)),
    InboxQuery(role="coder", after=Cursor(T0 + 20, 21)),
    InboxQuery(),  # the default view: every message not archived
    InboxQuery(before=Cursor(T0 + 20, 21)),
    InboxQuery(status="all", since=T0 + 5),
]


@pytest.mark.parametrize("query", VIEWS, ids=repr)
def test_each_inbox_view_reads_its_page_and_count_through_an_index(
    store: SqliteStore, query: InboxQuery
) -> None:
    found = plans(store, lambda: store.inbox.page(query, BUDGET))
    assert not full_scans(found), found
    assert not sorted_pages(found), found


def test_mail_counts_facets_and_single_lookups_use_an_index(store: SqliteStore) -> None:
    found = plans(store, lambda: store.mail_after(["r1", "r2"], 10, 5))
    found += plans(store, lambda: store.get_message("m"))
    found += plans(store, lambda: store.inbox.message("m"))
    found += plans(store, store.inbox.status_counts)
    found += plans(store, lambda: store.inbox.facets(10))
    found += plans(store, lambda: store.inbox.volume(T0, 60.0, 10, 5.0))
    found += plans(store, lambda: store.inbox.arrivals(InboxQuery(), 30, ["m"], BUDGET))
    assert not full_scans(found), found


def test_a_message_is_written_into_exactly_the_shared_order_indexes(store: SqliteStore) -> None:
    conn = sqlite3.connect(store.path)
    try:
        found = dict(conn.execute(
            "SELECT name, type FROM sqlite_master WHERE tbl_name = 'messages'"
            " AND type IN ('index', 'trigger')"))  # fmt: skip
    finally:
        conn.close()
    assert sorted(n for n, t in found.items() if t == "index") == sorted(ONE_ORDER_INDEXES)
    triggers = sorted(n for n, t in found.items() if t == "trigger")
    assert triggers == sorted((*COUNTER_TRIGGERS, ARCHIVE_GUARD))
