"""Every endpoint's contract, against a real relay on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from pathlib import Path

import orjson
import pytest
import requests

from relay_app.server import RelayServer
from tests.relay_app.helpers import NODE_A, NodeClient, batch, message, row_counts

# Every test that starts a relay runs on both engines (tests/relay_app/conftest.py).
STORE_ENGINES = ("sqlite", "postgres")


def test_a_single_message_is_stored_and_acknowledged_with_its_msg_id(
    node_a: NodeClient, data_dir: Path
) -> None:
    env = message(content={"report": "HOT lead", "score": 0.97}, task_id="t-1", role="recruiter")
    response = node_a.send(env)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "stored", "msg_id": env.msg_id}
    assert row_counts(data_dir)["messages"] == 1


def test_a_stored_message_comes_back_with_json_content_status_and_received_at(
    node_a: NodeClient,
) -> None:
    env = message(content={"nested": [1, 2, {"x": None}]}, recipient="commander-001")
    before = time.time()
    node_a.send(env)
    got = node_a.get(f"/query/messages/{env.msg_id}").json()
    assert {k: got[k] for k in env.to_wire()} == env.to_wire()
    assert got["status"] == "unread"
    assert before <= got["received_at"] <= time.time()


def test_a_message_that_does_not_exist_is_a_json_404(node_a: NodeClient) -> None:
    response = node_a.get("/query/messages/no-such-message")
    assert response.status_code == 404
    assert "no-such-message" in response.json()["error"]


def test_a_batch_is_acked_with_its_batch_id_plain_or_gzip(
    node_a: NodeClient, data_dir: Path
) -> None:
    plain = batch([message() for _ in range(3)], "batch-plain")
    assert node_a.send_batch(plain).json() == {"status": "acked", "batch_id": "batch-plain"}
    zipped = gzip.compress(orjson.dumps(batch([message() for _ in range(4)], "batch-gzip")))
    response = node_a.post("/sync/messages", data=zipped, headers={"Content-Encoding": "gzip"})
    assert response.json() == {"status": "acked", "batch_id": "batch-gzip"}
    counts = row_counts(data_dir)
    assert (counts["messages"], counts["batches"]) == (7, 2)


def test_the_query_filters_select_exactly_the_matching_messages(node_a: NodeClient) -> None:
    envs = [
        message(agent_id="agent-1", task_id="t-1", role="recruiter", priority="high"),
        message(agent_id="agent-2", task_id="t-1", role="reasoner", recipient="agent-1"),
        message(agent_id="agent-2", task_id="t-2", role="reasoner", priority="critical"),
    ]
    node_a.send_batch(batch(envs, "filters"))

    def ids(**params: object) -> set[str]:
        return {m["msg_id"] for m in node_a.query(**params)["messages"]}

    assert ids(agent="agent-2") == {envs[1].msg_id, envs[2].msg_id}
    assert ids(task="t-1", role="reasoner") == {envs[1].msg_id}
    assert ids(recipient="agent-1") == {envs[1].msg_id}
    assert ids(priority=["high", "critical"]) == {envs[0].msg_id, envs[2].msg_id}
    assert ids(node=NODE_A, status="unread") == {e.msg_id for e in envs}
    assert ids(msg_id=envs[2].msg_id) == {envs[2].msg_id}
    assert ids(node="node-b") == set()


def test_since_and_until_bound_the_message_timestamp(node_a: NodeClient) -> None:
    t0 = 1_700_000_000.0
    envs = [message(clock=lambda t=t: t0 + t) for t in range(5)]
    node_a.send_batch(batch(envs, "times"))
    page = node_a.query(since=t0 + 1, until=t0 + 3, order="asc")
    assert [m["timestamp"] for m in page["messages"]] == [t0 + 1, t0 + 2]
    assert page["total"] == 2


def test_a_page_reports_total_page_and_a_next_cursor_until_the_last_page(
    node_a: NodeClient,
) -> None:
    envs = [message() for _ in range(5)]
    node_a.send_batch(batch(envs, "five"))
    first = node_a.query(limit=2)
    assert (first["total"], first["page"], len(first["messages"])) == (5, 1, 2)
    # Newest received first: a batch is received in list order.
    assert [m["msg_id"] for m in first["messages"]] == [envs[4].msg_id, envs[3].msg_id]
    second = node_a.query(limit=2, next=first["next"])
    third = node_a.query(limit=2, next=second["next"])
    assert (second["page"], third["page"]) == (2, 3)
    assert [m["msg_id"] for m in third["messages"]] == [envs[0].msg_id]
    assert third["next"] is None
    assert node_a.query(limit=2, page=3)["messages"] == third["messages"]


def test_the_limit_defaults_to_100_and_is_capped_at_1000(node_a: NodeClient) -> None:
    for n in range(3):
        node_a.send_batch(batch([message() for _ in range(400)], f"many-{n}"))
    assert len(node_a.query()["messages"]) == 100
    capped = node_a.query(limit=5000)
    assert (len(capped["messages"]), capped["total"]) == (1000, 1200)


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_keyset_pages_have_no_gaps_or_repeats_while_new_messages_arrive(
    relay: RelayServer, node_a: NodeClient, order: str
) -> None:
    existing = [message() for _ in range(120)]
    node_a.send_batch(batch(existing, "existing"))
    writer = NodeClient(relay.url, NODE_A)
    arrived: list[str] = []
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set() and len(arrived) < 400:
            env = message()
            assert writer.send(env).status_code == 200
            arrived.append(env.msg_id)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        seen = _walk_pages(node_a, order, limit=7)
    finally:
        stop.set()
        thread.join()
        writer.close()
    assert len(seen) == len(set(seen)), "a message was returned twice"
    expected = [e.msg_id for e in existing]
    k = len(seen) - len(expected)
    if order == "desc":
        # Everything stored before the first page, newest first; later arrivals never show up.
        assert seen == arrived[:k][::-1] + expected[::-1]
    else:
        # Oldest first: the walk runs on into the new arrivals, in their order, without holes.
        assert seen == expected + arrived[:k]
        assert k > 0


def _walk_pages(client: NodeClient, order: str, limit: int) -> list[str]:
    seen: list[str] = []
    page = client.query(limit=limit, order=order)
    for _ in range(500):
        seen += [m["msg_id"] for m in page["messages"]]
        if page["next"] is None:
            break
        time.sleep(0.002)  # let the writer interleave
        page = client.query(limit=limit, next=page["next"])
    return seen


def test_a_node_status_report_is_upserted_and_listed(node_a: NodeClient) -> None:
    report = {
        "node_id": NODE_A,
        "sent_at": 1234.5,
        "agents": [
            {
                "agent_id": "agent-1",
                "cache_bytes_used": 1024,
                "cache_max_bytes": 2048,
                "outbox_depth": 3,
                "failed_batches": 0,
                "oldest_unsynced_age_s": 1.5,
                "last_sync_at": 1230.0,
                "cache_full": False,  # a field this relay does not know is kept
            }
        ],
    }
    assert node_a.post("/sync/status", json=report).status_code == 200
    report["sent_at"] = 1240.0
    report["agents"][0]["outbox_depth"] = 0  # type: ignore[index]
    assert node_a.post("/sync/status", json=report).status_code == 200
    nodes = node_a.get("/query/status").json()["nodes"]
    assert len(nodes) == 1
    assert (nodes[0]["node_id"], nodes[0]["sent_at"]) == (NODE_A, 1240.0)
    assert nodes[0]["agents"] == report["agents"]
    assert nodes[0]["received_at"] > 0


def test_a_file_is_streamed_to_disk_with_its_sha256_and_comes_back(
    node_a: NodeClient, data_dir: Path
) -> None:
    content = bytes(range(256)) * 4096  # 1 MiB
    response = node_a.post(
        "/sync/files",
        data={"agent_id": "agent-1", "msg_id": "msg-1"},
        files={"file": ("report ü.bin", content, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "stored"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    on_disk = data_dir / "files" / "agent-1" / body["file_id"]
    assert on_disk.read_bytes() == content
    assert not any((data_dir / "files" / ".incoming").iterdir())
    fetched = node_a.get(f"/files/{body['file_id']}")
    assert fetched.status_code == 200
    assert fetched.content == content
    assert "attachment" in fetched.headers["Content-Disposition"]
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"


def test_an_unknown_file_is_a_json_404(node_a: NodeClient) -> None:
    response = node_a.get("/files/no-such-file")
    assert response.status_code == 404
    assert "error" in response.json()


def test_healthz_needs_no_token_and_says_whether_writes_are_accepted(
    relay: RelayServer, node_a: NodeClient
) -> None:
    response = requests.get(relay.url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}  # the figures are for nodes and Prometheus
    body = node_a.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["writes_accepted"] is True
    assert body["refusing"] is None


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("GET", "/sync/message", 405), ("DELETE", "/healthz", 405)],
)
def test_unknown_routes_and_methods_get_json_errors(
    node_a: NodeClient, method: str, path: str, status: int
) -> None:
    response = node_a.session.request(method, node_a.url + path, timeout=10)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]
