"""GET /sync/digests and /sync/ids at the door: a node reads only its own agents'
digests, of its own messages, and malformed input is a clear 400."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from runtime.core import digest
from tests.relay_app.helpers import NODE_A, NODE_B, NodeClient, batch, message
from tests.support import Daemon


@pytest.fixture
def clients(relay_process: Daemon) -> Iterator[tuple[NodeClient, NodeClient]]:
    """node-a (agent-1, agent-2) and node-b (agent-b1) on a relay process."""
    a, b = NodeClient(relay_process.url, NODE_A), NodeClient(relay_process.url, NODE_B)
    yield a, b
    a.close()
    b.close()


def test_digests_and_ids_describe_what_the_node_wrote(
    clients: tuple[NodeClient, NodeClient],
) -> None:
    """The digests match the ids sent; the ids list them in msg_id order."""
    node_a, _ = clients
    sent = [message(content={"i": i}) for i in range(30)]
    assert node_a.send_batch(batch(sent, "b-1")).status_code == 200
    body = node_a.get("/sync/digests", params={"agent": "agent-1"}).json()
    assert body["bucket_seconds"] == digest.BUCKET_SECONDS
    assert len(body["generation"]) == 16
    assert body["next_since"] is None
    expected = digest.digests_of((m.timestamp, m.msg_id) for m in sent)
    assert digest.decode(body["digests"]) == expected
    hour = digest.bucket_start(digest.bucket_of(sent[0].timestamp))
    hours = {"agent": "agent-1", "since": hour, "until": hour + digest.BUCKET_SECONDS}
    ids = node_a.get("/sync/ids", params=hours).json()
    assert ids == {"ids": sorted(m.msg_id for m in sent if m.timestamp < hours["until"]),
                   "next": None}  # fmt: skip
    health = node_a.get("/healthz").json()
    assert health["generation"] == body["generation"]
    assert len(health["instance"]) == 16


def test_a_node_reads_no_other_nodes_agent(clients: tuple[NodeClient, NodeClient]) -> None:
    """Another node's agent is 403, one that exists nowhere too; a stranger is 401."""
    node_a, node_b = clients
    node_a.send(message(content={"secret": 1}))
    for path in ("/sync/digests", "/sync/ids"):
        hour = {"since": 0, "until": 3600}
        for agent in ("agent-b1", "nobody"):
            assert node_a.get(path, params={"agent": agent, **hour}).status_code == 403
        mine = {"agent": "agent-1", **hour}
        assert requests.get(node_a.url + path, params=mine, timeout=10).status_code == 401
        assert node_b.get(path, params=mine).status_code == 401  # no token


MALFORMED: list[dict[str, object]] = [
    {},
    {"agent": ""},
    {"agent": "agent-1", "since": "nan"},
    {"agent": "agent-1", "since": "inf"},
    {"agent": "agent-1", "until": "yesterday"},
    {"agent": "agent-1", "after": "../etc"},
    {"agent": ["agent-1", "agent-2"]},
    {"agent": "a" * 300},
    {"agent": "agent-1", "since": "1.7e308"},
    {"agent": "agent-1", "until": "-1e300"},
]


def test_malformed_parameters_are_a_clear_400(clients: tuple[NodeClient, NodeClient]) -> None:
    """Every malformed parameter is refused, named, never a 500."""
    node_a, _ = clients
    for params in MALFORMED:
        for path in ("/sync/digests", "/sync/ids"):
            response = node_a.get(path, params=params)
            assert response.status_code == 400, (path, params, response.text)
            assert response.json()["error"]
    wide = {"agent": "agent-1", "since": 0, "until": 7200}
    for params in (wide, {"agent": "agent-1", "since": 0}, {**wide, "until": 0}):
        response = node_a.get("/sync/ids", params=params)
        assert response.status_code == 400, (params, response.text)
        assert "at most 3600 s" in response.json()["error"]
