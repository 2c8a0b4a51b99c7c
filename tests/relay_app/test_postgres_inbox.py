"""The inbox's reads on PostgreSQL: any search text is safe and folded as the stored text,
live arrivals never pass a transaction still open, and budgets stop slow statements."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from relay_app.errors import QueryTooSlow, StoreUnavailable
from relay_app.inbox.search import parse_search
from relay_app.store import StoreWriter
from relay_app.store_inbox import InboxQuery, ReadBudget
from relay_app.store_search import SearchQuery, Term, words
from relay_app.stores.postgres import PostgresStore, search_text
from relay_app.stores.postgres_inbox import PostgresInbox, count_within
from relay_app.stores.postgres_search import MAX_LEXEME_BYTES, ts_search
from relay_app.stores.sqlite import SqliteStore
from runtime.core.envelope import encode_content
from tests.relay_app.inbox.harness import ODD_SEARCHES
from tests.relay_app.store_contract.corpus import T0, budget, index_all, put, row
from tests.support.ports import free_port

Conn = psycopg.Connection[TupleRow]
# Text a search box may hold, weighted to what tsquery and FTS syntax give meaning to.
SYNTAX = st.sampled_from([*"&|!<>():*'\"\\-_ \x00\t\n", "<->", "<2>", ":*", "OR", "AND"])
SEARCH_TEXT = st.one_of(
    st.text(),
    st.lists(st.one_of(SYNTAX, st.text(min_size=1, max_size=8)), max_size=30).map("".join),
)
LONG_WORD = st.integers(MAX_LEXEME_BYTES - 2, MAX_LEXEME_BYTES + 2).map(lambda n: "é" * n)
TERMS = st.builds(
    Term,
    words=st.lists(st.one_of(st.text(), LONG_WORD), min_size=1, max_size=3).map(tuple),
    prefix=st.booleans(),
)
QUERIES = st.builds(
    SearchQuery,
    groups=st.lists(st.lists(TERMS, min_size=1, max_size=3).map(tuple), max_size=3).map(tuple),
    excluded=st.lists(TERMS, max_size=2).map(tuple),
)
DEADLINE_S = 10.0
MANY_EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def store(postgres_dsn: str) -> PostgresStore:
    return PostgresStore(postgres_dsn)  # the schema


@pytest.fixture
def pool(store: PostgresStore) -> Iterator[ConnectionPool]:
    # A fixed size, filled before the test: a pool growing calls `random` in its own
    # thread, which hypothesis takes for a strategy using it.
    with ConnectionPool(store.dsn, kwargs={"autocommit": True}, min_size=4) as pool:
        pool.wait()
        yield pool


@pytest.fixture
def inbox(pool: ConnectionPool) -> PostgresInbox:
    return PostgresInbox(pool, 0)


@pytest.fixture
def writer(store: PostgresStore) -> Iterator[StoreWriter]:
    writer = store.open_writer()
    yield writer
    writer.close()


def found(inbox: PostgresInbox, text: str) -> list[str]:
    """The texts of the messages a search finds, newest first."""
    page = inbox.page(InboxQuery(status="all", search=parse_search(text)), budget())
    assert page.total == len(page.rows)
    return [r.content["text"] for r in page.rows]


def test_search_folds_case_and_diacritics_as_the_stored_text_is_folded(
    inbox: PostgresInbox, writer: StoreWriter
) -> None:
    texts = ["elan vital", "ÉLAN Straße", "naïve café", "foo_bar baz", "other"]
    put(writer, [row(T0 + i, content={"text": t}) for i, t in enumerate(texts)])
    assert found(inbox, "Élan") == ["ÉLAN Straße", "elan vital"]
    assert found(inbox, "NAIVE Cafe") == ["naïve café"]
    assert found(inbox, "straße") == ["ÉLAN Straße"]
    assert found(inbox, "caf*") == ["naïve café"]
    assert found(inbox, "foo_ba*") == ["foo_bar baz"]  # as FTS5 reads "foo_ba"*: a phrase
    assert found(inbox, '"vital elan"') == []  # a phrase keeps its order
    assert found(inbox, "elan -vital") == ["ÉLAN Straße"]
    assert found(inbox, "-elan -other") == ["foo_bar baz", "naïve café"]
    assert found(inbox, "_") == []  # a term without letters matches nothing
    assert len(found(inbox, "-_")) == 5  # and excluding it leaves everything


@settings(deadline=None)  # pure Python, but the machine may be busy
@given(text=st.text())
@example(text="Élan")
@example(text="ǅ İstanbul ﬁ ß ﬀ Ⅻ ½")
def test_a_query_is_cut_and_folded_exactly_as_the_stored_text(text: str) -> None:
    assert " ".join(words(text)) == search_text(encode_content(text))


@MANY_EXAMPLES
@given(text=SEARCH_TEXT)
def test_no_search_text_makes_a_read_fail(
    inbox: PostgresInbox, writer: StoreWriter, text: str
) -> None:
    if not inbox.page(InboxQuery(status="all"), budget()).rows:
        put(writer, [row(content={"text": "zanzibar e-mail 'quoted' back\\slash a:b"})])
    query = InboxQuery(search=parse_search(text))
    page = inbox.page(query, budget())
    assert page.total == len(page.rows)
    inbox.arrivals(query, 0, [], budget())


@pytest.mark.parametrize("text", ODD_SEARCHES)
def test_the_inbox_odd_searches_read(inbox: PostgresInbox, writer: StoreWriter, text: str) -> None:
    put(writer, [row(content={"text": "zanzibar e-mail"})])
    page = inbox.page(InboxQuery(search=parse_search(text)), budget())
    assert page.total == len(page.rows)


@MANY_EXAMPLES
@given(search=QUERIES)
def test_any_search_query_gives_a_valid_tsquery_or_none(
    inbox: PostgresInbox, pool: ConnectionPool, search: SearchQuery
) -> None:
    page = inbox.page(InboxQuery(search=search), budget())
    assert page.rows == []
    tsquery = ts_search(search).query
    if tsquery is not None:  # and it means what it was built from, checked by the server
        with pool.connection() as conn:
            assert conn.execute("SELECT %s::tsquery::text", (tsquery,)).fetchone()


def insert_open(conn: Conn, msg_id: str) -> None:
    """Insert a message on `conn` in its open transaction (committed by the caller)."""
    conn.execute(
        "INSERT INTO messages (msg_id, timestamp, node_id, agent_id, content, received_at,"
        " search) VALUES (%s, %s, 'node-a', 'agent-1', %s, %s, to_tsvector('simple', 'late'))",
        (msg_id, T0, encode_content({"text": "late"}), T0),
    )


def arrive(
    inbox: PostgresInbox, query: InboxQuery, watermark: int, count: int
) -> tuple[list[str], int]:
    """The msg_ids arriving after `watermark` (newest first) once `count` came, and the
    watermark after them. Any transaction of the server (an autovacuum's ANALYZE too)
    holds the horizon while it runs, so a row may take a few reads to come."""
    arrived: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(arrived) < count and time.monotonic() < deadline:
        got = inbox.arrivals(query, watermark, (), budget())
        arrived[0:0] = [r.msg_id for r in got.rows]
        watermark = got.watermark
        time.sleep(0.01 if got.rows else 0.05)
    return arrived, watermark


def test_arrivals_never_pass_a_transaction_still_open(
    inbox: PostgresInbox, writer: StoreWriter, store: PostgresStore
) -> None:
    query = InboxQuery(status="all")
    start = inbox.page(query, budget()).watermark
    with psycopg.connect(store.dsn) as late:  # a transaction opened by the first statement
        insert_open(late, "late-1")
        early = row(T0 + 1)
        put(writer, [early])  # committed after late-1 took its id, before late-1 commits
        assert [r.msg_id for r in inbox.page(query, budget()).rows] == [early.msg_id]
        held = inbox.arrivals(query, start, (), budget())
        assert held.rows == []  # early-1 waits behind the open transaction
        late.commit()
    brought, watermark = arrive(inbox, query, held.watermark, 2)
    assert brought == [early.msg_id, "late-1"]  # newest first, in commit-position order
    assert inbox.arrivals(query, watermark, (), budget()).rows == []


def test_a_page_watermark_stops_below_a_transaction_still_open(
    inbox: PostgresInbox, writer: StoreWriter, store: PostgresStore
) -> None:
    query = InboxQuery(status="all", search=parse_search("late"))
    with psycopg.connect(store.dsn) as late:
        insert_open(late, "late-1")
        put(writer, [row(content={"text": "late too"})])
        page = inbox.page(query, budget())
        assert len(page.rows) == 1
        late.commit()
    # late-1 comes after the page; the row stored after it comes again (a repeat, not a loss).
    assert "late-1" in arrive(inbox, query, page.watermark, 2)[0]


def test_a_page_past_its_time_raises_and_a_count_past_its_time_is_none(
    inbox: PostgresInbox, pool: ConnectionPool, store: PostgresStore
) -> None:
    with psycopg.connect(store.dsn) as blocker:
        blocker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(QueryTooSlow):
            inbox.page(InboxQuery(), ReadBudget(rows=5, count_cap=10, rows_s=0.1, count_s=0.1))
        with pytest.raises(QueryTooSlow):
            inbox.volume(T0, 10.0, 3, 0.1)
    with pool.connection() as conn, conn.transaction():
        assert count_within(conn, 0.05, "SELECT pg_sleep(1)::text::int", ()) is None
        assert count_within(conn, 5.0, "SELECT 7", ()) == 7  # the read goes on after it


def test_a_slow_count_leaves_the_page_its_rows(inbox: PostgresInbox, store: PostgresStore) -> None:
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO messages (msg_id, timestamp, node_id, agent_id, content, received_at,"
            " search) SELECT 'm-' || g, g, 'node-a', 'agent-1', %s, 0, ''::tsvector"
            " FROM generate_series(1, 100000) AS g",
            (encode_content({"text": "x"}),),
        )
        conn.execute("ANALYZE messages")
    tight = ReadBudget(rows=2, count_cap=100_000, rows_s=30.0, count_s=0.001)
    page = inbox.page(InboxQuery(), tight)
    assert (len(page.rows), page.more, page.total) == (2, True, None)


def test_reads_run_side_by_side_on_the_pool(inbox: PostgresInbox, writer: StoreWriter) -> None:
    put(writer, [row(content={"text": "zanzibar"})])
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                assert len(found(inbox, "zanzibar")) == 1
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# Documents whose words both engines cut alike, and searches over their words.
VOCABULARY = [
    *("alpha", "beta", "gamma", "delta", "Élan", "elan", "x_y", "30", "alphabet"),
    *("e-mail", "mail", "example.com", "com", "3.14", "14", "quoted", "dash", "naïve"),
]
DOCUMENTS = [
    "alpha beta gamma",
    "beta alpha",
    "ÉLAN vital, delta.",
    "gamma x_y 30 alphabet",
    "delta delta beta",
    "nothing here",
    "send an e-mail to alpha@example.com",
    "pi is 3.14, not 3",
    "“quoted” text—dash NAIVE",
]
WORDS = st.sampled_from(VOCABULARY)
SEARCH_TERMS = st.one_of(
    WORDS,
    WORDS.map(lambda w: f"-{w}"),
    WORDS.map(lambda w: f"{w[:3]}*"),
    st.lists(WORDS, min_size=2, max_size=3).map(lambda ws: '"' + " ".join(ws) + '"'),
    st.just("OR"),
)


@pytest.fixture
def both(
    tmp_path: Path, inbox: PostgresInbox, writer: StoreWriter
) -> Iterator[tuple[SqliteStore, PostgresInbox]]:
    """DOCUMENTS stored in SQLite (indexed) and in PostgreSQL."""
    sqlite = SqliteStore(tmp_path / "relay")
    sqlite_writer = sqlite.open_writer()
    documents = [row(T0 + i, content={"text": text}) for i, text in enumerate(DOCUMENTS)]
    put(sqlite_writer, documents)
    index_all(sqlite, sqlite_writer)
    put(writer, documents)
    yield sqlite, inbox
    sqlite_writer.close()
    sqlite.close()


@MANY_EXAMPLES
@given(terms=st.lists(SEARCH_TERMS, min_size=1, max_size=5))
def test_search_finds_what_sqlite_finds(
    both: tuple[SqliteStore, PostgresInbox], terms: list[str]
) -> None:
    sqlite, postgres = both
    query = InboxQuery(status="all", search=parse_search(" ".join(terms)))
    expected = sqlite.inbox.page(query, budget())
    got = postgres.page(query, budget())
    assert sorted(r.msg_id for r in got.rows) == sorted(r.msg_id for r in expected.rows)
    assert got.total == expected.total


# What SQLite's tokenizer cuts and PostgreSQL's parser would keep whole (or double): the
# stored search text is cut into words before the parser sees it.
@pytest.mark.parametrize(
    ("text", "search"),
    [
        ("“zanzibar”", "zanzibar"),  # curly quotes are letters to the parser in the C locale
        ("hello—world", "hello"),
        ("see example.com", "example"),  # a host name is one lexeme
        ("pi is 3.14", '"3 14"'),  # a decimal number is one lexeme
        ("foo e-mail", '"foo e"'),  # a hyphenated word also takes its parts' positions
    ],
)
def test_search_finds_words_glued_by_punctuation(
    inbox: PostgresInbox, writer: StoreWriter, text: str, search: str
) -> None:
    put(writer, [row(content={"text": text})])
    assert found(inbox, search) == [text]


def test_a_read_the_database_fails_is_store_unavailable(
    inbox: PostgresInbox, store: PostgresStore
) -> None:
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages RENAME TO moved_away")
    with pytest.raises(StoreUnavailable, match="cluster database"):
        inbox.page(InboxQuery(), budget())
    with pytest.raises(StoreUnavailable):
        inbox.message("m-1")


def test_a_database_out_of_reach_is_store_unavailable() -> None:
    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=1"
    pool = ConnectionPool(unreachable, min_size=1, timeout=0.5, open=True)
    try:
        with pytest.raises(StoreUnavailable):
            PostgresInbox(pool, 0).unread_count()
    finally:
        pool.close()
