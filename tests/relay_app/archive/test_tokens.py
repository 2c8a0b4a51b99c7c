"""The archive's words are the hot index's words, and its searches find what the index finds."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_app.archive.tokens import fts_words
from relay_app.inbox.search import parse_search
from relay_app.store_archive import use_word_classifier
from relay_app.store_inbox import InboxQuery, ReadBudget
from relay_app.stores.sqlite_archive import FTS_TOKENIZER, classify_chars
from relay_app.stores.sqlite_schema import MIGRATIONS
from tests.relay_app.archive.tiers import T_OLD, Tier, row

# Any code point a JSON string may carry, weighted toward the ones tokenizers disagree on.
TEXT = st.text(
    st.characters(exclude_categories=("Cs",))
    | st.sampled_from("ﬁ²½①🦘é\u0301ßİ\u0131_-$+\u2019\u200b\u00a0東ｶﾞ"),
    max_size=60,
)


@pytest.fixture(scope="module")
def index() -> Iterator[sqlite3.Connection]:
    """An FTS5 table made as the hot store makes messages_fts, and a view of its words;
    the archive told to cut words as SQLite does (as opening a SQLite store tells it)."""
    use_word_classifier(classify_chars)
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE VIRTUAL TABLE f USING fts5(body, tokenize='{FTS_TOKENIZER}')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance')")
    yield conn
    conn.close()


def test_the_tokenizer_is_the_one_the_hot_index_is_made_with() -> None:
    made = [sql for step in MIGRATIONS for sql in step if "messages_fts USING fts5" in sql]
    assert len(made) == 1
    assert f"tokenize='{FTS_TOKENIZER}'" in made[0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_a_text_cuts_into_the_words_fts5_holds_for_it(index: sqlite3.Connection, text: str) -> None:
    index.execute("DELETE FROM f")
    index.execute("INSERT INTO f (rowid, body) VALUES (1, ?)", (text.replace("\x00", " "),))
    held = [t for (t,) in index.execute("SELECT term FROM v ORDER BY offset")]
    assert fts_words(text) == held


VOCABULARY = ["alpha", "beta", "gamma", "alphabet", "Beta", "ÄLPHA", "gam-ma", "x²", "ﬁle",
              "file", "42", "4.2", "kangaroo🦘hop", "naïve", "snake_case"]  # fmt: skip
QUERY_WORDS = ["alpha", "alp*", '"alpha beta"', "-beta", "OR", "gamma", "gam*", "x²", "42",
               '"4.2"', "ﬁle", "file", "naive", "snake", "-gam*", "kangaroo", "beta*"]  # fmt: skip
CONTENTS = st.lists(
    st.lists(st.sampled_from(VOCABULARY), max_size=8).map(" ".join), min_size=1, max_size=5
)
QUERIES = st.lists(
    st.lists(st.sampled_from(QUERY_WORDS), min_size=1, max_size=4).map(" ".join),
    min_size=1,
    max_size=4,
)
EXAMPLES = itertools.count()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(CONTENTS, QUERIES)
def test_a_search_finds_the_same_texts_archived_as_the_hot_index_finds(
    tier: Tier, texts: list[str], queries: list[str]
) -> None:
    n = next(EXAMPLES)
    moved = [row(T_OLD + i, agent=f"moved-{n}", content={"t": t}) for i, t in enumerate(texts)]
    hot = [row(T_OLD + i, agent=f"hot-{n}", content={"t": t}) for i, t in enumerate(texts)]
    tier.put(moved + hot)
    tier.mark_archived(*(r.msg_id for r in moved))
    assert tier.archiver().run_once().moved == len(moved)
    tier.index_all()
    number = {r.msg_id: i for rows in (moved, hot) for i, r in enumerate(rows)}
    budget = ReadBudget(rows=50, count_cap=1000, rows_s=30.0, count_s=30.0)
    for text in queries:
        search = parse_search(text)
        if search is None:
            continue
        views = (InboxQuery(status="inbox", agent_id=f"hot-{n}", search=search),
                 InboxQuery(status="archived", agent_id=f"moved-{n}", search=search))  # fmt: skip
        in_hot, in_archive = (
            sorted(number[r.msg_id] for r in tier.store.inbox.page(view, budget).rows)
            for view in views
        )
        assert in_hot == in_archive, text
