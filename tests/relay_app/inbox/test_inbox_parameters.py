"""Inbox query parameters: numbers out of range never reach SQLite, a search is bounded.

A search is repeated every second by the live page, so what one may cost is bounded: its
length, its number of terms, and its prefix terms (a one-letter prefix expands to most
of the index). The page says what it cut.
"""

from __future__ import annotations

import pytest
import requests

from relay_app.inbox.search import (
    MAX_PREFIX_TERMS,
    MAX_QUERY_CHARS,
    MAX_TERMS,
    MIN_PREFIX_CHARS,
    parse_search,
)
from tests.relay_app.inbox.harness import Relay

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
# The query the issue timed at 1.5 s: 500 characters of one-letter prefix terms.
PREFIX_FLOOD = " OR ".join(f"{c}*" for c in ALPHABET * 10)[:500]


@pytest.fixture
def operator(inbox_relay: Relay) -> requests.Session:
    inbox_relay.send(content={"text": "alpha beta gamma zanzibar"})
    inbox_relay.indexed()
    return inbox_relay.operator()


@pytest.mark.parametrize(
    "after_id",
    ["1e23", "99999999999999999999", "9223372036854775808", "-1", "abc", "٣", "", ["1", "2"]],
)
def test_live_updates_refuse_an_after_id_that_is_no_row_id_naming_it(
    inbox_relay: Relay, operator: requests.Session, after_id: str | list[str]
) -> None:
    response = operator.get(
        inbox_relay.url + "/messages/api/updates", params={"after_id": after_id}, timeout=10
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("after_id:")


def test_live_updates_accept_the_largest_row_id(
    inbox_relay: Relay, operator: requests.Session
) -> None:
    response = operator.get(
        inbox_relay.url + "/messages/api/updates",
        params={"after_id": str(2**63 - 1)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("before", "1e23_99999999999999999999"),
        ("after", "1_9223372036854775808"),
        ("before", "1e400_5"),
        ("from", "0001-01-01"),
        ("from", "0001-01-01T00:00:00+01:00"),
        ("to", "9999-12-31T23:59:59-14:00"),
        ("to", "-99999999999"),
        ("from", "nan"),
    ],
)
def test_a_page_drops_an_out_of_range_cursor_or_time_and_says_so(
    inbox_relay: Relay, operator: requests.Session, name: str, value: str
) -> None:
    for path in ("/messages", "/messages/api/updates"):
        response = operator.get(inbox_relay.url + path, params={name: value}, timeout=10)
        assert response.status_code == 200, (path, response.text[:300])
    page = operator.get(inbox_relay.url + "/messages", params={name: value}, timeout=10)
    assert f"ignored {name}=" in page.text


def test_a_search_keeps_within_its_bounds() -> None:
    flood = parse_search(PREFIX_FLOOD)
    assert flood is not None
    terms = flood.terms()
    assert len(terms) == MAX_TERMS
    assert not any(t.prefix for t in terms)  # one letter is too short to be a prefix
    assert any("prefix needs" in note for note in flood.notes)
    assert any(f"first {MAX_TERMS} search terms" in note for note in flood.notes)
    many = parse_search(" ".join(f"{w}*" for w in ("alpha", "beta", "gamma", "delta", "omega")))
    assert many is not None
    assert sum(t.prefix for t in many.terms()) == MAX_PREFIX_TERMS
    assert any(f"at most {MAX_PREFIX_TERMS} prefix" in note for note in many.notes)
    long = parse_search("word " * 100)
    assert long is not None
    assert any(f"first {MAX_QUERY_CHARS} characters" in note for note in long.notes)
    exact = parse_search("zan* zanz*")
    assert exact is not None
    assert [t.prefix for t in exact.terms()] == [True, True]
    assert exact.notes == ()
    short = parse_search("z" * (MIN_PREFIX_CHARS - 1) + "*")
    assert short is not None
    assert [t.prefix for t in short.terms()] == [False]


def test_the_page_says_how_a_search_was_bounded_and_still_finds(
    inbox_relay: Relay, operator: requests.Session
) -> None:
    page = operator.get(inbox_relay.url + "/messages", params={"q": PREFIX_FLOOD}, timeout=10)
    assert page.status_code == 200
    assert "a prefix needs 3 letters" in page.text
    assert "Only the first 8 search terms were used." in page.text
    found = operator.get(inbox_relay.url + "/messages", params={"q": "zan*"}, timeout=10)
    assert "zanzibar" in found.text
    assert 'class="notice"' not in found.text


@pytest.mark.parametrize(
    "path",
    [
        "/messages?q=%ff",
        "/messages?agent=%ff%fe",
        "/messages?%ff=1",
        "/messages/api/updates?after_id=%ff",
    ],
)
def test_a_query_string_that_is_not_utf8_is_no_500(
    inbox_relay: Relay, operator: requests.Session, path: str
) -> None:
    response = operator.get(inbox_relay.url + path, timeout=10)
    assert response.status_code in (200, 400), response.text
