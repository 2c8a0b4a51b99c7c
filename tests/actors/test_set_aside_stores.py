"""The stores' side of setting poison aside: cache rows marked, outbox batches halved."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path
from typing import Any

import orjson

from actors.cache_store import CacheStore
from actors.messages import Query
from actors.outbox_store import OutboxStore
from actors.poison import poison_reason
from runtime.core.envelope import MessageEnvelope, encode_content


def env(i: int, **changes: Any) -> MessageEnvelope:
    made = MessageEnvelope.new(agent_id="a1", node_id="n1", content={"i": i})
    return dataclasses.replace(made, **changes)


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_unsendable_rows_are_set_aside_when_listed_and_never_listed_again(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    good = [env(i) for i in range(3)]
    deep, far, broken = env(10), env(11, timestamp=9.9e15), env(12)
    store.write_many([good[0], deep, far, good[1], broken, good[2]])
    with store.conn:
        store.conn.execute(
            "UPDATE messages SET content = ? WHERE msg_id = ?",
            (encode_content(nested(254)), deep.msg_id),
        )
        store.conn.execute(
            "UPDATE messages SET content = ? WHERE msg_id = ?", (b"\x1f\x8bnot gzip", broken.msg_id)
        )
    listed = store.list_unsynced(100)
    assert [r.envelope.msg_id for r in listed] == [e.msg_id for e in good]
    assert [r.envelope.msg_id for r in store.list_unsynced(100)] == [e.msg_id for e in good]
    stats = store.stats()
    assert (stats.unsynced_count, stats.set_aside_count) == (3, 3)
    reasons = dict(store.set_aside_reasons())
    assert "content" in reasons[deep.msg_id]
    assert "timestamp" in reasons[far.msg_id]
    assert "cannot be decoded" in reasons[broken.msg_id]
    # Reads skip what cannot be decoded instead of failing every query.
    assert store.get(broken.msg_id) is None
    assert len(store.query(Query())) == 5
    assert store.retry_set_aside() == 3
    assert store.stats().set_aside_count == 0
    assert len(store.list_unsynced(100)) == 3  # set aside again at once
    assert store.mark_synced([deep.msg_id]) == 1  # the relay took it after all: no longer aside
    assert store.stats().set_aside_count == 2
    store.close()


def test_a_message_is_poison_when_the_rule_refuses_it_or_its_wire_form_cannot_be_made() -> None:
    assert poison_reason(env(1)) is None
    assert "priority" in (poison_reason(env(1, priority="urgent")) or "")
    assert poison_reason(env(1, content=nested(254))) is not None
    assert len(poison_reason(env(1, task_id="x" * 10_000)) or "") <= 300


def batch_messages(payload: bytes) -> list[str]:
    return [m["msg_id"] for m in orjson.loads(gzip.decompress(payload))["messages"]]


def test_a_refused_batch_is_replaced_by_its_two_halves_ahead_of_later_batches(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=5, clock=lambda: now[0])
    messages = [env(i) for i in range(5)]
    store.enqueue(messages)
    first = store.next_pending()
    assert first is not None
    now[0] += 1
    later = [env(i) for i in range(5, 8)]
    store.enqueue(later)  # a batch made after the refused one
    assert store.split(first.batch_id)
    left = store.next_pending()
    assert left is not None
    assert left.msg_ids == tuple(m.msg_id for m in messages[:2])
    assert batch_messages(left.payload) == list(left.msg_ids)
    store.acked(left.batch_id)
    right = store.next_pending()
    assert right is not None
    assert right.msg_ids == tuple(m.msg_id for m in messages[2:])
    assert batch_messages(right.payload) == list(right.msg_ids)
    assert store.covered({m.msg_id for m in messages}) == {m.msg_id for m in messages[2:]}
    assert store.counts()["pending"] == (2, 6)
    store.acked(right.batch_id)
    rest = store.next_pending()
    assert rest is not None
    assert rest.msg_ids == tuple(m.msg_id for m in later)
    store.close()


def test_a_batch_of_one_or_one_that_does_not_read_back_is_not_split(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=1)
    store.enqueue([env(1)])
    batch = store.next_pending()
    assert batch is not None
    assert not store.split(batch.batch_id)
    store.acked(batch.batch_id)
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    store.enqueue([env(i) for i in range(4)])
    batch = store.next_pending()
    assert batch is not None
    with store.conn:
        store.conn.execute(
            "UPDATE outbox SET payload = ? WHERE batch_id = ?", (b"junk", batch.batch_id)
        )
    assert not store.split(batch.batch_id)
    store.dissolve(batch.batch_id)
    assert store.counts() == {}
    assert store.covered(set(batch.msg_ids)) == set()
    store.close()


def test_a_message_row_without_its_wire_is_left_out_of_the_batch_and_uncovered(
    tmp_path: Path,
) -> None:
    store = OutboxStore(tmp_path / "outbox.db", node_id="n1", batch_size=10)
    messages = [env(i) for i in range(3)]
    store.enqueue(messages)
    with store.conn:
        store.conn.execute(
            "UPDATE outbox_messages SET wire = NULL WHERE msg_id = ?", (messages[1].msg_id,)
        )
    batch = store.next_pending()
    assert batch is not None
    assert batch_messages(batch.payload) == [messages[0].msg_id, messages[2].msg_id]
    assert batch.msg_ids == (messages[0].msg_id, messages[2].msg_id)
    assert store.covered({m.msg_id for m in messages}) == {messages[0].msg_id, messages[2].msg_id}
    store.close()
