"""The byte prefilter never turns away a row the full match admits."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_app.archive.matching import ArchiveQuery
from relay_app.archive.prefilter import Prefilter
from relay_app.archive.tokens import fts_words
from relay_app.inbox.search import parse_search
from relay_app.store_search import content_text

TEXT = st.text(
    alphabet=st.sampled_from(list('abcXYZ019 .-_"\\\n\téÉﬁ²ǅ\u00e9\u0301🙂İı')), max_size=30
)
SCALARS = st.one_of(
    TEXT,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
CONTENT = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def line_of(content: Any, agent: str) -> bytes:
    """A segment line as the writer writes it."""
    row = {"msg_id": "m1", "timestamp": 1.0, "agent_id": agent, "node_id": "n",
           "task_id": None, "sender": None, "recipient": None, "role": None,
           "priority": "normal", "content": content, "received_at": 1.0,
           "status": "archived", "id": 1}  # fmt: skip
    return orjson.dumps(row)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONTENT, st.data())
def test_a_row_the_full_match_admits_passes_the_prefilter(
    content: Any, data: st.DataObject
) -> None:
    words = fts_words(content_text(content)) or ["absent"]
    picked = data.draw(st.lists(st.sampled_from(words), min_size=1, max_size=3))
    prefix = data.draw(st.booleans())
    text = " ".join(picked) + ("*" if prefix else "")
    search = parse_search(text)
    agent = data.draw(st.sampled_from(["a1", 'a"q', "a\\b", "é"]))
    query = ArchiveQuery(equal=(("agent_id", (agent,)),), search=search)
    line = line_of(content, agent)
    row = orjson.loads(line)
    if query.admits(row):
        assert query.prefilter().may_match(line), (text, line)


def test_the_prefilter_turns_away_what_surely_cannot_match() -> None:
    test = Prefilter.of((("agent_id", ("a1",)),), parse_search("zephyr"))
    assert not test.may_match(line_of({"t": "zephyr"}, "a2"))
    assert not test.may_match(line_of({"t": "plain words"}, "a1"))
    assert test.may_match(line_of({"t": "a Zephyr wind"}, "a1"))
    assert test.may_match(line_of({"t": "zéphyr"}, "a1"))  # not ASCII: left to the full match


def test_numbers_and_escapes_are_left_to_the_full_match() -> None:
    # 1.5e-07's text has the word "07"; its JSON (1.5e-7) does not.
    number = ArchiveQuery(search=parse_search("07"))
    line = line_of({"n": 1.5e-07}, "a1")
    assert number.admits(orjson.loads(line))
    assert number.prefilter().may_match(line)
    # A line another writer escaped: \u00e9 is é, whose word "cafe" the bytes do not hold.
    escaped = line.replace(b'{"n":1.5e-7}', b'{"t":"caf\\u00e9"}')
    cafe = ArchiveQuery(search=parse_search("cafe"))
    assert cafe.admits(orjson.loads(escaped))
    assert cafe.prefilter().may_match(escaped)
