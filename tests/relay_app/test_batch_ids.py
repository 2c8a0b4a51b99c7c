"""A batch_id the relay has seen never makes it drop a message: msg_id alone decides."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.relay_app.helpers import NodeClient, batch, message, row_counts, stored_msg_ids


def test_a_known_batch_id_carrying_new_messages_stores_them(
    node_a: NodeClient, data_dir: Path
) -> None:
    first = [message() for _ in range(3)]
    later = [message() for _ in range(4)]
    assert node_a.send_batch(batch(first, "reused-id")).status_code == 200
    response = node_a.send_batch(batch(later, "reused-id"))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "acked", "batch_id": "reused-id"}
    for env in later:
        fetched = node_a.get(f"/query/messages/{env.msg_id}")
        assert fetched.status_code == 200, env.msg_id
        assert fetched.json()["content"] == env.content
    assert Counter(stored_msg_ids(data_dir)) == Counter(e.msg_id for e in first + later)


def test_a_known_batch_id_with_old_and_new_messages_stores_each_exactly_once(
    node_a: NodeClient, data_dir: Path
) -> None:
    old = [message() for _ in range(5)]
    new = [message() for _ in range(5)]
    node_a.send_batch(batch(old, "grown-batch"))
    for _ in range(2):  # the second resend is a plain repeat: same ack, nothing new
        response = node_a.send_batch(batch(old[2:] + new, "grown-batch"))
        assert response.json() == {"status": "acked", "batch_id": "grown-batch"}
    stored = Counter(stored_msg_ids(data_dir))
    assert stored == Counter(e.msg_id for e in old + new)
    assert row_counts(data_dir)["batches"] == 1


def test_a_batch_id_first_seen_from_another_node_does_not_hide_this_nodes_messages(
    node_a: NodeClient, node_b: NodeClient, data_dir: Path
) -> None:
    from_b = [message(node_id="node-b") for _ in range(2)]
    from_a = [message() for _ in range(2)]
    assert node_b.send_batch(batch(from_b, "same-id", node_id="node-b")).status_code == 200
    assert node_a.send_batch(batch(from_a, "same-id")).status_code == 200
    assert Counter(stored_msg_ids(data_dir)) == Counter(e.msg_id for e in from_b + from_a)
