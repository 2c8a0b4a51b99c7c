"""No query string makes an inbox page answer 5xx (hypothesis, bounded, a live relay)."""

from __future__ import annotations

from pathlib import Path

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.relay_app.inbox.harness import start_relay

PARAMS = ("status", "role", "agent", "node", "priority", "range", "from", "to", "q", "before",
          "after", "after_id", "back")  # fmt: skip
NUMBERS = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),
    st.sampled_from(["1e23", "-0", "9" * 40, "²", "١٢", "0x10", "1_000", " 7 ", "nan", "-inf"]),
)
CURSORS = st.tuples(NUMBERS, NUMBERS).map("_".join)
VALUES = st.one_of(st.text(max_size=60), NUMBERS, CURSORS, st.text(min_size=400, max_size=700))
QUERIES = st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=5)
PATHS = st.sampled_from(
    ["/messages", "/messages/api/updates", "/messages/nodes", "/messages/m/", "/api/unread_count"]
)


def test_no_query_string_makes_an_inbox_page_fail(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        env = relay.send(content={"text": "zanzibar logistics report"})
        relay.send(content=[[[["deep"]]]], timestamp=946_684_800.0)
        relay.indexed()
        operator = relay.operator()
        answered: list[int] = []

        @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(path=PATHS, query=QUERIES, msg_id=st.one_of(st.just(env.msg_id), st.text()))
        def never_fails(path: str, query: dict[str, str], msg_id: str) -> None:
            url = (
                relay.url
                + path
                + (requests.utils.quote(msg_id, safe="") if path.endswith("/m/") else "")
            )
            response = operator.get(url, params=query, timeout=10, allow_redirects=False)
            assert response.status_code < 500, (path, query, response.text[:300])
            answered.append(response.status_code)

        never_fails()
        assert 200 in answered
        assert len(answered) >= 300
    finally:
        relay.stop()
