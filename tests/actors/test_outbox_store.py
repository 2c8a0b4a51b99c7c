"""outbox.db: batches, coverage, top-up of the open batch, failed batches."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from actors.outbox_store import OutboxStore
from runtime.core.envelope import MessageEnvelope


def envs(count: int) -> list[MessageEnvelope]:
    return [
        MessageEnvelope.new(agent_id="a1", node_id="n1", content={"i": i}) for i in range(count)
    ]


def test_messages_are_batched_and_covered_once(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    batch = envs(25)
    assert store.enqueue(batch) == 25
    assert store.enqueue(batch) == 0
    assert store.counts()["pending"] == (3, 25)
    first = store.next_pending()
    assert first is not None
    body = orjson.loads(gzip.decompress(first.payload))
    assert body["node_id"] == "n1"
    assert [m["msg_id"] for m in body["messages"]] == list(first.msg_ids)


def test_small_enqueues_fill_the_open_batch(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    singles = envs(23)
    for env in singles:
        store.enqueue([env])
    assert store.counts()["pending"] == (3, 23)
    assert store.covered({e.msg_id for e in singles}) == {e.msg_id for e in singles}
    first = store.next_pending()
    assert first is not None
    assert first.msg_ids == tuple(e.msg_id for e in singles[:10])
    body = orjson.loads(gzip.decompress(first.payload))
    assert body["batch_id"] == first.batch_id
    assert [m["content"] for m in body["messages"]] == [e.content for e in singles[:10]]


def test_a_frozen_batch_never_changes_and_new_messages_open_another(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    store.enqueue(envs(3))
    frozen = store.next_pending()  # frozen now: it may reach the relay from here on
    assert frozen is not None
    store.attempt_failed(frozen.batch_id, "timeout")
    store.enqueue(envs(2))
    assert store.counts()["pending"] == (2, 5)
    again = store.next_pending()
    assert again is not None
    assert (again.batch_id, again.payload, again.msg_ids) == (
        frozen.batch_id,
        frozen.payload,
        frozen.msg_ids,
    )
    assert again.retry_count == 1


def test_the_open_batch_survives_a_reopen(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    store.enqueue(envs(4))
    store.close()
    reopened = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    reopened.enqueue(envs(4))
    batch = reopened.next_pending()
    assert batch is not None
    assert len(batch.msg_ids) == 8


def test_failed_batches_wait_for_an_operator(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    store.enqueue(envs(5))
    batch = store.next_pending()
    assert batch is not None
    store.set_failed(batch.batch_id, "HTTP 400")
    assert store.next_pending() is None
    assert store.counts()["failed"] == (1, 5)
    assert store.retry_failed() == 1
    store.acked(batch.batch_id)
    assert store.counts() == {}
    assert store.covered({batch.msg_ids[0]}) == set()
