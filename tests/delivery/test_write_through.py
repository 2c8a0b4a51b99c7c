"""Write-through, outbox and local-first reads with a real relay and real nodes in-process."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.cache import CacheActor
from actors.messages import Enqueue, GetOutboxStats, GetStats, RetryFailed, Tick, Write
from actors.outbox import OutboxActor
from actors.outbox_store import OutboxStore
from relay_app.server import RelayServer
from runtime.core.backoff import Backoff
from runtime.core.envelope import MessageEnvelope
from runtime.core.relay_client import RelayTarget
from runtime.core.sync_state import SyncState
from runtime.node.node import Node
from tests.delivery.harness import relay_get, relay_rows, start_node, start_relay
from tests.support import TOKENS, cluster, free_port, wait_for


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    server = start_relay(cluster(tmp_path / "relay"))
    yield server
    server.stop()


def test_a_write_is_on_the_relay_moments_later_and_marked_synced(
    tmp_path: Path, relay: RelayServer
) -> None:
    node = start_node(cluster(tmp_path / "relay"), "node-a", tmp_path / "a", relay.url)
    try:
        agent = node.agent("a1")
        msg_id = agent.write({"lead": "ACME"}, task_id="t1")
        wait_for(lambda: relay_get(relay.url, msg_id) is not None, timeout=5)
        stored = relay_get(relay.url, msg_id)
        assert stored is not None
        assert stored["content"] == {"lead": "ACME"}
        assert stored["node_id"] == "node-a"
        wait_for(lambda: agent.stats().unsynced_count == 0, timeout=5)
    finally:
        node.stop()


def test_relay_down_writes_go_on_and_the_backlog_drains_when_it_returns(tmp_path: Path) -> None:
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port)
    relay = start_relay(config, port)
    node = start_node(config, "node-a", tmp_path / "a", relay.url)
    try:
        relay.stop()
        agent = node.agent("a1")
        ids = [agent.write({"i": i}) for i in range(300)]
        wait_for(lambda: node.actors["a1"].outbox.ask(GetOutboxStats()).pending_messages == 300, 10)
        time.sleep(0.3)
        assert agent.stats().unsynced_count == 300
        assert agent.stats().oldest_unsynced_ts is not None
        relay = start_relay(config, port)
        took = wait_for(lambda: agent.stats().unsynced_count == 0, timeout=30)
        rows = relay_rows(tmp_path / "relay")
        assert all(len(rows[m]) == 1 for m in ids)
        assert node.actors["a1"].outbox.ask(GetOutboxStats()).pending_batches == 0
        print(f"backlog of 300 drained {took:.2f}s after the relay returned")
    finally:
        node.stop()
        relay.stop()


def test_node_b_reads_a_message_of_node_a_through_the_relay_then_from_its_cache(
    tmp_path: Path, relay: RelayServer
) -> None:
    config = cluster(tmp_path / "relay")
    node_a = start_node(config, "node-a", tmp_path / "a", relay.url)
    node_b = start_node(config, "node-b", tmp_path / "b", relay.url)
    try:
        msg_id = node_a.agent("a1").write("from A")
        wait_for(lambda: relay_get(relay.url, msg_id) is not None, timeout=5)
        reader = node_b.agent("b1")
        assert reader.stats().message_count == 0
        got = reader.read(msg_id)
        assert got is not None
        assert got.content == "from A"
        assert got.agent_id == "a1"
        wait_for(lambda: reader.stats().message_count == 1, timeout=5)
        relay.stop()  # now only B's own cache can answer
        again = reader.read(msg_id)
        assert again == got
    finally:
        node_a.stop()
        node_b.stop()


def start_outbox(
    tmp_path: Path, relay_url: str, cache: Any, backoff: Backoff, state: SyncState | None = None
) -> Any:
    """An OutboxActor on tmp_path/outbox.db, sending to relay_url as node-a, batches of 10."""
    return OutboxActor.start(
        tmp_path / "outbox.db",
        agent_id="a1",
        node_id="node-a",
        cache=cache,
        target=RelayTarget(relay_url, "node-a", TOKENS["node-a"], 2.0),
        backoff=backoff,
        sync_state=state or SyncState(),
        batch_size=10,
    )


def fresh(i: int) -> MessageEnvelope:
    return MessageEnvelope.new(agent_id="a1", node_id="node-a", content={"i": i})


def test_a_poison_batch_is_set_aside_and_later_batches_go_through(
    tmp_path: Path, relay: RelayServer
) -> None:
    cache = CacheActor.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    store = OutboxStore(tmp_path / "outbox.db", node_id="node-a")
    with store.conn:
        store.conn.execute(
            "INSERT INTO outbox (batch_id, payload, created_at, message_count) VALUES (?, ?, ?, 1)",
            (
                "poison-1",
                gzip.compress(b'{"batch_id": "poison-1", "messages": "nope"}'),
                time.time(),
            ),
        )
    store.close()
    outbox = start_outbox(tmp_path, relay.url, cache, Backoff(cap=0.1))
    good = [fresh(i) for i in range(25)]
    for env in good:
        cache.ask(Write(env))
    outbox.ask(Enqueue(tuple(good)))
    outbox.tell(Tick())
    wait_for(lambda: outbox.ask(GetOutboxStats()).pending_batches == 0, timeout=10)
    stats = outbox.ask(GetOutboxStats())
    assert stats.failed_batches == 1
    assert all(relay_get(relay.url, e.msg_id) for e in good)
    wait_for(lambda: cache.ask(GetStats()).unsynced_count == 0, timeout=5)
    assert outbox.ask(RetryFailed()) == 1
    wait_for(lambda: outbox.ask(GetOutboxStats()).failed_batches == 1, timeout=10)
    outbox.stop()
    cache.stop()


def test_a_relay_answering_507_makes_the_outbox_back_off_and_then_resume(tmp_path: Path) -> None:
    free = {"bytes": 0}
    config = cluster(tmp_path / "relay", min_free_bytes=10**6)
    relay = start_relay(config, free_bytes=lambda: free["bytes"])
    cache = CacheActor.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    state = SyncState()
    # rng 1.0: every delay is its ceiling, 1 s, 2 s, ... so the attempt count is predictable.
    outbox = start_outbox(
        tmp_path,
        relay.url,
        cache,
        Backoff(base=2.0, retry_max=10, cap=60.0, rng=lambda: 1.0),
        state,
    )
    try:
        envs = [fresh(i) for i in range(30)]
        for env in envs:
            cache.ask(Write(env))
        outbox.ask(Enqueue(tuple(envs)))
        started = time.monotonic()
        while time.monotonic() - started < 3.5:  # ticks ten times a second, as a busy node would
            outbox.tell(Tick())
            time.sleep(0.1)
        failures = state.snapshot().failures_total
        # Attempts at about 0 s, 1 s and 3 s: three, where 35 ticks would have made 35.
        assert 2 <= failures <= 4, failures
        assert outbox.ask(GetOutboxStats()).consecutive_failures == failures
        free["bytes"] = 10**9
        wait_for(
            lambda: (outbox.tell(Tick()), outbox.ask(GetOutboxStats()).pending_messages)[1] == 0, 15
        )
        rows = relay_rows(tmp_path / "relay")
        assert all(len(rows[e.msg_id]) == 1 for e in envs)
    finally:
        outbox.stop()
        cache.stop()
        relay.stop()


def test_recovery_enqueues_unsynced_messages_that_no_batch_covers(
    tmp_path: Path, relay: RelayServer
) -> None:
    # As after a crash between the local commit and the outbox write: only messages.db has them.
    cache = CacheActor.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    envs = [fresh(i) for i in range(40)]
    for env in envs:
        cache.ask(Write(env))
    outbox = start_outbox(tmp_path, relay.url, cache, Backoff(cap=0.1))
    wait_for(lambda: cache.ask(GetStats()).unsynced_count == 0, timeout=10)
    assert all(relay_get(relay.url, e.msg_id) for e in envs)
    outbox.stop()
    cache.stop()


def test_a_node_starts_while_the_relay_is_away(tmp_path: Path) -> None:
    config = cluster(tmp_path / "relay")
    node: Node = start_node(config, "node-a", tmp_path / "a", "http://127.0.0.1:9")
    try:
        assert node.healthy()
        assert node.agent("a1").write("still works")
    finally:
        node.stop()
