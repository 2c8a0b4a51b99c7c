"""Whatever the door stores comes back unchanged from the archive: looked up, listed,
exported and restored (property-based, envelopes near every limit of the rule)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_app.archive.export import COLUMNS, archived_rows
from relay_app.archive.restore import restore_op
from relay_app.store import MessageQuery
from relay_app.store_inbox import Audit
from runtime.core.envelope import (
    MAX_DEPTH,
    MAX_TEXT,
    PRIORITIES,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
)
from tests.relay_app.archive.tiers import Tier, row
from tests.support.json_values import JSON, SCALARS

# Envelope text fields: no controls, no line separators, no surrogates.
FIELD_TEXT = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\u2028\u2029"),
    min_size=1,
    max_size=MAX_TEXT,
)


def _deep(levels: int, leaf: Any) -> Any:
    for level in range(levels):
        leaf = {f"level{level}": leaf} if level % 2 else [leaf]
    return leaf


CONTENT = JSON | st.builds(_deep, st.integers(MAX_DEPTH - 6, MAX_DEPTH - 1), SCALARS)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {
            "ts": st.floats(TIMESTAMP_MIN, TIMESTAMP_MAX, exclude_max=True)
            | st.sampled_from([TIMESTAMP_MIN]),
            "content": CONTENT,
        },
        optional={
            "task_id": FIELD_TEXT,
            "sender": FIELD_TEXT,
            "recipient": FIELD_TEXT,
            "role": FIELD_TEXT,
            "priority": st.sampled_from(PRIORITIES),
        },
    ),
    min_size=1,
    max_size=6,
)


def plain(message: dict[str, Any] | None) -> dict[str, Any]:
    """A stored message with its content parsed (the store hands out raw JSON)."""
    assert message is not None
    return dict(orjson.loads(orjson.dumps(message)))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(MESSAGES)
def test_a_stored_message_comes_back_unchanged_from_the_archive(
    tier: Tier, messages: list[dict[str, Any]]
) -> None:
    rows = []
    for fields in messages:
        ts = fields.pop("ts")
        if "sender" in fields:
            fields["sender"] = "agent-1"  # an agent writes only as itself
        rows.append(row(ts, **fields))
    tier.put(rows)
    ids = [r.msg_id for r in rows]
    tier.mark_archived(*ids)
    before = {m: plain(tier.store.get_message(m)) for m in ids}
    assert tier.archiver().run_once().moved == len(ids)
    assert {m: plain(tier.store.get_message(m)) for m in ids} == before
    listed = tier.store.query_messages(MessageQuery(limit=1000, archived=True))
    assert {m["msg_id"]: plain(m) for m in listed.messages if m["msg_id"] in before} == before
    exported = {r["msg_id"]: r for r in archived_rows(tier.store.reader, None, None)}
    for msg_id, shown in before.items():
        assert {c: exported[msg_id][c] for c in COLUMNS} == {c: shown[c] for c in COLUMNS}
    op = restore_op(tier.store, ids, Audit("restore", "operator", time.time()))
    assert op is not None
    tier.writer.write([op], time.time())
    restored = {m: plain(tier.store.get_message(m)) for m in ids}
    assert restored == {m: {**b, "status": "acknowledged"} for m, b in before.items()}
