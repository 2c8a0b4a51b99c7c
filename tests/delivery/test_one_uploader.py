"""One uploader per node: what its agents write while a push is in flight shares one request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from actors.messages import GetOutboxStats, Push
from relay_app.server import RelayServer
from runtime.node.node import Node, NodeOptions
from tests.delivery.harness import relay_get, start_node, start_relay
from tests.support import TOKENS, Partition, cluster, free_port, wait_for

SYNC_ROUTES = ("/sync/message", "/sync/messages")


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    server = start_relay(cluster(tmp_path / "relay"))
    yield server
    server.stop()


@pytest.fixture
def link(relay: RelayServer) -> Iterator[Partition]:
    """A forwarder between the node and the relay, whose delay makes pushes last."""
    proxy = Partition(free_port(), int(relay.url.rsplit(":", 1)[1]))
    proxy.heal()
    yield proxy
    proxy.cut()


@pytest.fixture
def linked_node(tmp_path: Path, link: Partition) -> Iterator[Node]:
    """node-a, reaching the relay only through the link."""
    url = f"http://127.0.0.1:{link.port}"
    node = start_node(cluster(tmp_path / "relay"), "node-a", tmp_path / "a", url)
    yield node
    node.stop()


def sync_posts(url: str) -> dict[str, float]:
    """POSTs the relay answered on its message routes, by route."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    posts = dict.fromkeys(SYNC_ROUTES, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route, post = sample.labels.get("route"), sample.labels.get("method") == "POST"
            if sample.name == "commander_relay_requests_total" and route in posts and post:
                posts[route] += sample.value
    return posts


def test_writes_of_two_agents_made_while_a_push_is_in_flight_share_the_next_request(
    relay: RelayServer, link: Partition, linked_node: Node
) -> None:
    node = linked_node
    a1, a2 = node.agent("a1"), node.agent("a2")
    link.delay = 0.5
    first = a1.write("goes out alone, slowly")
    time.sleep(0.1)  # the first push is now on the wire, held by the link
    later = [a1.write("joins"), a2.write("joins too"), a2.write("and me")]
    link.delay = 0.0
    for msg_id in [first, *later]:
        wait_for(lambda m=msg_id: relay_get(relay.url, m) is not None, timeout=10)
    assert sync_posts(relay.url) == {"/sync/message": 1, "/sync/messages": 1}
    wait_for(lambda: a1.stats().unsynced_count == 0 and a2.stats().unsynced_count == 0, 5)
    for agent_id in ("a1", "a2"):
        assert node.actors[agent_id].outbox.ask(GetOutboxStats()).pending_messages == 0
        assert node.actors[agent_id].sync.snapshot().acked_messages_total == 2


def test_an_idle_write_goes_out_at_once_in_a_request_of_its_own(
    tmp_path: Path, relay: RelayServer
) -> None:
    node = start_node(cluster(tmp_path / "relay"), "node-a", tmp_path / "a", relay.url)
    try:
        for n, agent_id in enumerate(("a1", "a2", "a1"), start=1):
            msg_id = node.agent(agent_id).write(f"idle write {n}")
            wait_for(lambda m=msg_id: relay_get(relay.url, m) is not None, timeout=2)
            assert sync_posts(relay.url) == {"/sync/message": n, "/sync/messages": 0}
    finally:
        node.stop()


def test_what_one_request_fails_to_deliver_goes_to_each_agents_own_outbox(
    relay: RelayServer, link: Partition, linked_node: Node
) -> None:
    node = linked_node
    link.cut()
    ids: dict[str, list[str]] = {"a1": [], "a2": []}
    for i in range(3):
        for agent_id, mine in ids.items():
            mine.append(node.agent(agent_id).write({"i": i}))
    for agent_id in ids:
        outbox = node.actors[agent_id].outbox
        wait_for(lambda o=outbox: o.ask(GetOutboxStats()).pending_messages == 3, 10)
        sync = node.actors[agent_id].sync  # the uploader's failure or the outbox's retry
        wait_for(lambda s=sync: s.snapshot().failures_total >= 1, 10)
    link.heal()
    for msg_id in [*ids["a1"], *ids["a2"]]:
        wait_for(lambda m=msg_id: relay_get(relay.url, m) is not None, timeout=20)
    wait_for(lambda: all(node.agent(a).stats().unsynced_count == 0 for a in ids), 10)


def test_an_uploader_that_keeps_failing_is_down_alone_and_the_outboxes_deliver_meanwhile(
    tmp_path: Path, relay: RelayServer
) -> None:
    options = NodeOptions(
        data_dir=str(tmp_path / "a"),
        relay_url=relay.url,
        token=TOKENS["node-a"],
        agent_revive_base=2.0,
        agent_revive_cap=2.0,
    )
    node = Node(cluster(tmp_path / "relay"), "node-a", options).start()
    try:
        assert node.uploader is not None
        crashed = Push(("not an envelope",))  # type: ignore[arg-type]
        uploader, supervisor = node.uploader, node.uploader_supervisor
        for n in range(1, node.options.max_restarts + 2):
            # One at a time: Pushes waiting together would be taken, and crash, as one.
            uploader.tell(crashed)
            wait_for(lambda n=n: supervisor.down or uploader.restarts >= n, timeout=10)
        assert supervisor.down is not None
        assert node.healthy()
        assert node.agent_state("a1") == "up"
        meanwhile = node.agent("a1").write("delivered by the outbox's sweep")
        wait_for(lambda: relay_get(relay.url, meanwhile) is not None, timeout=30)
        wait_for(lambda: node.uploader_supervisor.down is None, timeout=10)
        after = node.agent("a2").write("written through again")
        wait_for(lambda: relay_get(relay.url, after) is not None, timeout=5)
    finally:
        node.stop()
