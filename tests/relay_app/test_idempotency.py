"""Delivery is at-least-once, storage exactly-once: repeats are acked without a second row."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from relay_app.server import RelayServer
from runtime.core.envelope import MessageEnvelope
from tests.relay_app.helpers import (
    NODE_A,
    TOKENS,
    NodeClient,
    batch,
    message,
    row_counts,
    stored_msg_ids,
)

# Every test that starts a relay runs on both engines (tests/relay_app/conftest.py).
STORE_ENGINES = ("sqlite", "postgres")

AUTH = {
    "Content-Type": "application/json",
    "X-Commander-Node": NODE_A,
    "Authorization": f"Bearer {TOKENS[NODE_A]}",
}
THREADS = 16
# Messages per thread: on PostgreSQL each one costs several round trips to the server,
# and 200 a thread still puts duplicates inside and across group commits.
PER_THREAD = {"sqlite": 500, "postgres": 200}


def test_the_same_message_twice_is_acked_twice_and_stored_once(
    node_a: NodeClient, data_dir: Path
) -> None:
    env = message()
    first, second = node_a.send(env), node_a.send(env)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"status": "stored", "msg_id": env.msg_id}
    assert stored_msg_ids(data_dir) == [env.msg_id]


def test_the_same_batch_twice_gets_the_same_ack_and_is_stored_once(
    node_a: NodeClient, data_dir: Path
) -> None:
    body = batch([message() for _ in range(10)], "batch-1")
    first, second = node_a.send_batch(body), node_a.send_batch(body)
    assert first.json() == second.json() == {"status": "acked", "batch_id": "batch-1"}
    counts = row_counts(data_dir)
    assert (counts["messages"], counts["batches"]) == (10, 1)


def test_a_batch_overlapping_stored_messages_stores_only_the_new_ones(
    node_a: NodeClient, data_dir: Path
) -> None:
    envs = [message() for _ in range(6)]
    for env in envs[:3]:
        node_a.send(env)
    response = node_a.send_batch(batch(envs, "retry-after-partial-delivery"))
    assert response.json()["status"] == "acked"
    assert Counter(stored_msg_ids(data_dir)) == Counter(e.msg_id for e in envs)


def test_sixteen_threads_sending_hundreds_of_messages_each_store_every_message_exactly_once(
    relay: RelayServer, data_dir: Path, store_engine: str
) -> None:
    # Every message travels twice at the same time: once alone, once in a batch from
    # another connection, so group commits see duplicates inside and across groups.
    per_thread = PER_THREAD[store_engine]
    sets = [[message(agent_id=f"agent-{t}") for _ in range(per_thread)] for t in range(THREADS)]
    failures: list[str] = []

    def singles(envs: list[MessageEnvelope]) -> None:
        # http.client rather than requests: 8,000 requests from this process share its GIL
        # with the relay, and requests spends several times more CPU per request.
        conn = http.client.HTTPConnection(urlsplit(relay.url).netloc, timeout=60)
        try:
            for env in envs:
                conn.request("POST", "/sync/message", orjson.dumps(env.to_wire()), AUTH)
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    failures.append(body.decode())
        finally:
            conn.close()

    def batches(t: int) -> None:
        client = NodeClient(relay.url, NODE_A)
        try:
            for start in range(0, per_thread, 100):
                body = batch(sets[t][start : start + 100], f"dup-{t}-{start}")
                response = client.send_batch(body)
                if response.status_code != 200:
                    failures.append(response.text)
        finally:
            client.close()

    threads = [threading.Thread(target=singles, args=(envs,)) for envs in sets]
    threads += [threading.Thread(target=batches, args=(t,)) for t in range(0, THREADS, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures
    stored = Counter(stored_msg_ids(data_dir))
    assert set(stored.values()) == {1}
    assert set(stored) == {env.msg_id for envs in sets for env in envs}


def test_a_msg_id_another_node_stored_is_refused_409_not_acked_and_lost(
    node_a: NodeClient, node_b: NodeClient, data_dir: Path
) -> None:
    # node-b squats an id node-a's agent will use (agents may bring their own msg_id):
    # an ack would tell node-a its message is stored while the relay keeps node-b's.
    squat = message(node_id="node-b", agent_id="agent-b1", msg_id="task-42-report")
    assert node_b.send(squat).status_code == 200
    own = message(msg_id="task-42-report", content={"text": "the real report"})
    for response in (node_a.send(own), node_a.send_batch(batch([own], "batch-1"))):
        assert response.status_code == 409, response.text
        assert "'task-42-report'" in response.json()["error"]
    assert row_counts(data_dir)["batches"] == 0
    assert node_b.send(squat).status_code == 200  # its own repeat is still acked


def test_one_batch_giving_a_msg_id_to_two_agents_is_refused(
    node_a: NodeClient, data_dir: Path
) -> None:
    first = message(msg_id="same-id")
    other = message(agent_id="agent-2", msg_id="same-id")
    response = node_a.send_batch(batch([first, other], "batch-1"))
    assert response.status_code == 409, response.text
    assert stored_msg_ids(data_dir) == []
