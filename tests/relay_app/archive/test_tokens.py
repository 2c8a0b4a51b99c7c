"""The archive's words are the hot index's words: whole texts cut by FTS5 itself agree."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_app.archive.tokens import TOKENIZER, fts_words
from relay_app.stores.sqlite_schema import MIGRATIONS

# Any code point a JSON string may carry, weighted toward the ones tokenizers disagree on.
TEXT = st.text(
    st.characters(exclude_categories=("Cs",))
    | st.sampled_from("ﬁ²½①🦘é\u0301ßİ\u0131_-$+\u2019\u200b\u00a0東ｶﾞ"),
    max_size=60,
)


@pytest.fixture(scope="module")
def index() -> Iterator[sqlite3.Connection]:
    """An FTS5 table made as the hot store makes messages_fts, and a view of its words."""
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE VIRTUAL TABLE f USING fts5(body, tokenize='{TOKENIZER}')")
    conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(f, 'instance')")
    yield conn
    conn.close()


def test_the_tokenizer_is_the_one_the_hot_index_is_made_with() -> None:
    made = [sql for step in MIGRATIONS for sql in step if "messages_fts USING fts5" in sql]
    assert len(made) == 1
    assert f"tokenize='{TOKENIZER}'" in made[0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_a_text_cuts_into_the_words_fts5_holds_for_it(index: sqlite3.Connection, text: str) -> None:
    index.execute("DELETE FROM f")
    index.execute("INSERT INTO f (rowid, body) VALUES (1, ?)", (text.replace("\x00", " "),))
    held = [t for (t,) in index.execute("SELECT term FROM v ORDER BY offset")]
    assert fts_words(text) == held
