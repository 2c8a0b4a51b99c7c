"""An unknown query filter is refused, naming it, by every door: in process, HTTP, client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runtime.core.errors import InvalidMessage
from runtime.core.wsgi import ServerHandle, serve_in_thread
from runtime.node.client import NodeClient
from runtime.node.doors import Door, with_door
from runtime.node.http import create_node_app
from runtime.node.node import Node, NodeOptions
from runtime.node.query_filters import QUERY_FILTERS, make_query
from tests.runtime.test_node import NODE, cluster


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    """A node with agent a1, whose door is served on TCP; the node and its base URL."""
    with Node(cluster("a1"), NODE, NodeOptions(data_dir=str(tmp_path))) as node:
        app = with_door(create_node_app(node), Door("agent", "a1"))
        http: ServerHandle = serve_in_thread(app, "127.0.0.1", 0, name="node")
        try:
            yield node, http.url
        finally:
            http.stop()


def test_the_filters_are_those_of_the_cache_query() -> None:
    assert QUERY_FILTERS == ("task_id", "sender", "recipient", "since", "limit")
    assert make_query({"task_id": "t1", "limit": 5}).limit == 5


def test_an_agent_query_in_process_names_an_unknown_filter(served: tuple[Node, str]) -> None:
    node, _ = served
    agent = node.agent("a1")
    agent.write({"n": 1}, priority="low", timeout=5)
    with pytest.raises(InvalidMessage, match=r"^priority: unknown filter") as refused:
        agent.query(priority="high", timeout=5)
    assert refused.value.field == "priority"
    with pytest.raises(InvalidMessage, match=r"^taskid: unknown filter"):
        agent.query_async(taskid="t1")
    assert len(agent.query(timeout=5)) == 1


def test_the_node_client_names_an_unknown_filter_instead_of_answering_all(
    served: tuple[Node, str],
) -> None:
    node, url = served
    node.agent("a1").write({"n": 1}, timeout=5)
    client = NodeClient(url, "a1", token="door-decides")
    try:
        with pytest.raises(InvalidMessage, match="task_id, sender") as refused:
            client.query(priority="high")
        assert refused.value.field == "priority"
        assert len(client.query(limit=10)) == 1
    finally:
        client.close()


def test_the_node_http_query_answers_400_naming_an_unknown_parameter(
    served: tuple[Node, str],
) -> None:
    _, url = served
    response = requests.get(f"{url}/agents/a1/messages", params={"priority": "high"}, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"].startswith("priority: unknown query parameter")
