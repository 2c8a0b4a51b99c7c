"""Search parsing and highlighting: every input becomes a safe FTS5 query or none."""

from __future__ import annotations

import sqlite3

import pytest

from relay_app.inbox.search import highlight, parse_search, snippet, terms_pattern
from relay_app.store_search import content_text
from tests.relay_app.inbox.harness import ODD_SEARCHES


@pytest.fixture(scope="module")
def fts() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(body, content='', tokenize='unicode61')")
    conn.execute("INSERT INTO t (rowid, body) VALUES (1, 'zanzibar logistics e-mail')")
    return conn


@pytest.mark.parametrize("text", ODD_SEARCHES)
def test_every_parsed_query_is_valid_fts5(fts: sqlite3.Connection, text: str) -> None:
    query = parse_search(text)
    if query is not None:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.match(),)).fetchall()


def test_empty_and_punctuation_only_inputs_are_no_search() -> None:
    for text in ("", "   ", '"', '""', "-", "*", "()", "AND", "OR OR"):
        assert parse_search(text) is None


def test_operators_become_groups_and_exclusions() -> None:
    query = parse_search('acme OR "zanzibar logistics" -spam lead*')
    assert query is not None
    assert query.match() == '("acme" OR "zanzibar logistics") AND "lead"* NOT "spam"'


def test_exclusions_alone_name_the_rows_to_leave_out_and_say_so(fts: sqlite3.Connection) -> None:
    query = parse_search("-acme -zanz*")
    assert query is not None
    assert query.groups == ()
    assert query.match() == '"acme" OR "zanz"*'
    assert query.notes == ("Showing every message without acme, zanz*.",)
    assert query.terms() == []
    left_out = fts.execute("SELECT rowid FROM t WHERE t MATCH ?", (query.match(),)).fetchall()
    assert left_out == [(1,)]


def test_highlight_escapes_every_piece_before_marking() -> None:
    pattern = terms_pattern(parse_search("script").terms())  # type: ignore[union-attr]
    assert highlight("<script>x</script>", pattern) == (
        "&lt;<mark>script</mark>&gt;x&lt;/<mark>script</mark>&gt;"
    )


def test_snippet_centres_on_the_first_match() -> None:
    text = "filler " * 100 + "zanzibar" + " tail" * 100
    pattern = terms_pattern(parse_search("zanzibar").terms())  # type: ignore[union-attr]
    html = snippet(text, pattern)
    assert html.startswith("…")
    assert "<mark>zanzibar</mark>" in html


def test_content_text_takes_values_not_keys() -> None:
    content = {"company": "Acme", "n": 3, "ok": True, "tags": ["hot", None]}
    assert content_text(content).split("\n") == ["Acme", "3", "true", "hot"]
