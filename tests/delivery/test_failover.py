"""A node given several relays of one cluster store moves to the next when one fails.

The relays share a PostgreSQL database, as relays of one cluster do: a SQLite data
directory belongs to one relay at a time (relay.lock).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay_app.server import RelayServer
from runtime.core.envelope import MessageEnvelope
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.node.node import Node, NodeOptions
from tests.delivery.harness import postgres_rows, relay_get, start_relay
from tests.support import TOKENS, cluster, free_port, wait_for


@pytest.fixture
def two_relays(tmp_path: Path, postgres_dsn: str) -> Iterator[list[RelayServer]]:
    """Two relays over one store (one PostgreSQL database), each on its own port."""
    config = cluster(tmp_path / "relay", store=postgres_dsn)
    relays = [start_relay(config, free_port()), start_relay(config, free_port())]
    yield relays
    for relay in relays:
        relay.stop()


def node_on(tmp_path: Path, urls: list[str], **options: float) -> Node:
    """node-a given the relays' URLs, comma-separated, the first preferred."""
    config = cluster(tmp_path / "relay")
    settings = NodeOptions(
        data_dir=str(tmp_path / "a"),
        relay_url=",".join(urls),
        token=TOKENS["node-a"],
        probe_interval=0.2,
        **options,  # type: ignore[arg-type]
    )
    return Node(config, "node-a", settings).start()


def test_with_the_first_relay_gone_writes_go_through_the_second_at_once(
    tmp_path: Path, two_relays: list[RelayServer], postgres_dsn: str
) -> None:
    first, second = two_relays
    node = node_on(tmp_path, [first.url, second.url])
    try:
        agent = node.agent("a1")
        before = agent.write("through the first")
        wait_for(lambda: relay_get(second.url, before) is not None, timeout=5)
        first.stop()
        ids = [agent.write({"i": i}) for i in range(20)]
        for msg_id in ids:
            wait_for(lambda m=msg_id: relay_get(second.url, m) is not None, timeout=5)
        wait_for(lambda: agent.stats().unsynced_count == 0, timeout=5)
        rows = postgres_rows(postgres_dsn)
        assert all(len(rows[m]) == 1 for m in [before, *ids])
        # Write-through moved over: nothing waited for the outbox's retry.
        assert node.actors["a1"].sync.snapshot().failures_total == 0
    finally:
        node.stop()


def test_a_client_drifts_back_to_the_preferred_relay_once_it_is_back(
    tmp_path: Path, two_relays: list[RelayServer], postgres_dsn: str
) -> None:
    first, second = two_relays
    first_url, port = first.url, int(first.url.rsplit(":", 1)[1])
    now = [0.0]
    target = RelayTarget(
        first.url, "node-a", TOKENS["node-a"], fallbacks=(second.url,), drift_back_s=30.0
    )
    client = RelayClient(target, clock=lambda: now[0])
    try:
        first.stop()
        client.push_message(MessageEnvelope.new(agent_id="a1", node_id="node-a", content="one"))
        assert client.current_url == second.url
        restarted = start_relay(cluster(tmp_path / "relay", store=postgres_dsn), port)
        try:
            client.push_message(MessageEnvelope.new(agent_id="a1", node_id="node-a", content=2))
            assert client.current_url == second.url  # not yet: the drift waits
            now[0] += 31.0
            client.push_message(MessageEnvelope.new(agent_id="a1", node_id="node-a", content=3))
            assert client.current_url == first_url
        finally:
            restarted.stop()
    finally:
        client.close()


def test_a_refusal_is_not_a_reason_to_move(tmp_path: Path, two_relays: list[RelayServer]) -> None:
    first, second = two_relays
    target = RelayTarget(first.url, "node-a", "not-the-token", fallbacks=(second.url,))
    client = RelayClient(target)
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match="401"):
            client.push_message(MessageEnvelope.new(agent_id="a1", node_id="node-a", content=1))
        assert client.current_url == first.url
        assert time.monotonic() - started < 5
    finally:
        client.close()
