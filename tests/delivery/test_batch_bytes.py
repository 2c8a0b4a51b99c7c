"""Every batch a node builds fits the relay's body limit, whatever its messages weigh.

Batches were bounded only by message count (500): 500 messages near the content limit
made a body the relay refused with 413, and the batch was set aside as failed.
"""

from __future__ import annotations

import gzip
import os
import textwrap
from pathlib import Path

import orjson
import pytest

from actors.outbox_store import OutboxStore
from actors.uploader import split_batches
from relay_app.server import RelayServer
from runtime.core.config import load_config
from runtime.core.envelope import MAX_BATCH_BYTES, MAX_CONTENT_BYTES, MessageEnvelope
from runtime.core.errors import ConfigError
from runtime.core.relay_client import RelayClient, RelayTarget
from tests.relay_app.helpers import NODE_A, TOKENS, make_config


def heavy(count: int) -> list[MessageEnvelope]:
    """Messages whose content is just under the limit, random so gzip cannot shrink it."""
    room = MAX_CONTENT_BYTES - 16
    return [
        MessageEnvelope.new(agent_id="a1", node_id=NODE_A, content=os.urandom(room // 2).hex())
        for _ in range(count)
    ]


def test_the_outbox_closes_a_batch_before_its_body_passes_the_relay_limit(
    tmp_path: Path,
) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id=NODE_A, batch_size=500)
    messages = heavy(9)
    store.enqueue(messages[:5])
    store.enqueue(messages[5:])  # tops up the open batch only while it has room
    sent: list[str] = []
    config = make_config(tmp_path / "relay", max_body_bytes=MAX_BATCH_BYTES)
    with RelayServer(config, host="127.0.0.1", port=0) as relay:
        client = RelayClient(RelayTarget(relay.url, NODE_A, TOKENS[NODE_A], timeout=30))
        try:
            for _ in range(len(messages)):
                batch = store.next_pending()
                if batch is None:
                    break
                assert len(gzip.decompress(batch.payload)) <= MAX_BATCH_BYTES
                client.push_batch(batch.payload, batch.batch_id)  # raises on 413
                store.acked(batch.batch_id)
                sent.extend(batch.msg_ids)
        finally:
            client.close()
            store.close()
    assert sent == [m.msg_id for m in messages]


def test_write_through_splits_by_bytes_as_well_as_by_count() -> None:
    messages = heavy(9)
    batches = split_batches(messages, 500)
    assert [m for b in batches for m in b] == messages
    assert len(batches) > 1
    for part in batches:
        body = sum(len(orjson.dumps(m.to_wire())) + 1 for m in part)
        assert body <= MAX_BATCH_BYTES
    assert [len(b) for b in split_batches(messages[:1] * 7, 3)] == [3, 3, 1]


def test_a_relay_body_limit_below_a_node_batch_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "relay.yaml").write_text(
        textwrap.dedent(
            """\
            nodes:
              - id: "node-a"
                host: "127.0.0.1"
                port: 9
            relay:
              max_body_bytes: 1048576
            """
        )
    )
    with pytest.raises(ConfigError, match="max_body_bytes"):
        load_config(tmp_path)
