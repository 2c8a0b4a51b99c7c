"""Any JSON in any field of a message: the relay stores it unchanged or refuses it with 4xx.

Hypothesis sets envelope fields (and unknown ones) to arbitrary JSON values on a live
relay; an answer is never 5xx, a 400 names a field, and whatever was acknowledged reads
back exactly as sent.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.core.envelope import DEFAULT_PRIORITY, WIRE_FIELDS
from tests.relay_app.helpers import NodeClient, message

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False,
    allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
FIELDS = st.sampled_from(WIRE_FIELDS) | TEXT
CHANGES = st.dictionaries(FIELDS, VALUES | st.just("__drop__"), max_size=3)


def test_any_value_in_any_field_is_stored_unchanged_or_refused_with_4xx(
    node_a: NodeClient,
) -> None:
    outcomes: list[int] = []
    stored: set[str] = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(changes=CHANGES)
    def stored_or_refused(changes: dict[str, Any]) -> None:
        wire = message().to_wire()
        for key, value in changes.items():
            if value == "__drop__":
                wire.pop(key, None)
            else:
                wire[key] = value
        answer = node_a.post("/sync/message", data=orjson.dumps(wire))
        outcomes.append(answer.status_code)
        assert answer.status_code in (200, 400, 403), answer.text[:300]
        if answer.status_code != 200:
            assert ": " in answer.json()["error"]
            return
        if wire["msg_id"] in stored:
            return  # acknowledged again, stored once: the first copy stays (exactly-once)
        stored.add(wire["msg_id"])
        got = orjson.loads(node_a.get(f"/query/messages/{wire['msg_id']}").content)
        expected = {k: wire.get(k) for k in WIRE_FIELDS}
        if expected["priority"] is None:
            expected["priority"] = DEFAULT_PRIORITY
        assert {k: got[k] for k in WIRE_FIELDS} == expected

    stored_or_refused()
    assert {200, 400} <= set(outcomes)
