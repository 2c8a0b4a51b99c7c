"""One batch body: the uploader and the outbox send one builder's bytes; the relay takes them."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.outbox_store import OutboxStore
from relay_app.server import RelayServer
from relay_app.validate import batch_request
from runtime.core.envelope import MessageEnvelope, new_msg_id
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.wire import batch_gzip, batch_json, batch_messages, message_json
from tests.relay_app.helpers import NODE_A, make_config, stored_msg_ids
from tests.support import TOKENS

REPO = Path(__file__).resolve().parents[2]
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False,
    allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)  # fmt: skip
ENVELOPES = st.lists(
    st.builds(
        lambda content, task: MessageEnvelope.new(
            agent_id="agent-1", node_id=NODE_A, content=content, task_id=task
        ),
        JSON,
        st.none() | st.text('abc:-"\\é', max_size=8),
    ),
    min_size=1,
    max_size=5,
)


def as_dict(batch_id: str, envelopes: list[MessageEnvelope]) -> dict[str, Any]:
    return {"batch_id": batch_id, "node_id": NODE_A, "messages": [e.to_wire() for e in envelopes]}


@settings(max_examples=200, deadline=None)
@given(envelopes=ENVELOPES)
def test_the_spliced_body_is_byte_for_byte_the_encoded_document(
    envelopes: list[MessageEnvelope],
) -> None:
    batch_id = new_msg_id()
    body = batch_json(batch_id, NODE_A, map(message_json, envelopes))

    assert body == orjson.dumps(as_dict(batch_id, envelopes))
    assert batch_messages(batch_gzip(batch_id, NODE_A, map(message_json, envelopes))) == [
        e.to_wire() for e in envelopes
    ]
    request = batch_request(orjson.loads(body), NODE_A, 10)
    assert [row.msg_id for row in request.rows] == [e.msg_id for e in envelopes]


def test_what_is_not_a_batch_reads_back_as_none() -> None:
    for payload in (
        None,
        b"",
        b"not gzip",
        gzip.compress(b"[]"),
        gzip.compress(b'{"messages":[1]}'),
    ):
        assert batch_messages(payload) is None


def test_the_outboxs_frozen_payload_is_the_builders_and_the_relay_acks_it(
    tmp_path: Path,
) -> None:
    envelopes = [
        MessageEnvelope.new(agent_id="agent-1", node_id=NODE_A, content={"i": i}) for i in range(3)
    ]
    outbox = OutboxStore(tmp_path / "outbox.db", node_id=NODE_A)
    outbox.enqueue(envelopes)
    frozen = outbox.next_pending()
    assert frozen is not None
    assert frozen.payload == batch_gzip(frozen.batch_id, NODE_A, map(message_json, envelopes))
    relay = RelayServer(make_config(tmp_path / "relay"), host="127.0.0.1", port=0).start()
    client = RelayClient(RelayTarget(relay.url, NODE_A, TOKENS[NODE_A]))
    try:
        client.push_batch(frozen.payload, frozen.batch_id)
        client.push_batch(frozen.payload, frozen.batch_id)  # a retry: same bytes, same ack
    finally:
        client.close()
        relay.stop()
        outbox.close()
    assert stored_msg_ids(tmp_path / "relay") == [e.msg_id for e in envelopes]


def test_no_other_module_spells_out_the_batch_body() -> None:
    body = re.compile(r'"messages":\[|"batch_id":\s*[\w.]+,\s*"node_id"')
    spelled = [
        str(path.relative_to(REPO))
        for package in ("runtime", "actors")
        for path in (REPO / package).rglob("*.py")
        if body.search(path.read_text(encoding="utf-8"))
    ]
    assert spelled == ["runtime/core/wire.py"]
