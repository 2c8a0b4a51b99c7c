"""A full disk: writes get 507 with nothing half-written, reads go on, writes come back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import requests

from relay_app.diskspace import SpaceGate
from relay_app.server import RelayServer
from relay_app.stores.sqlite import SqliteStore
from tests.relay_app.conftest import RelayFactory
from tests.relay_app.helpers import (
    NODE_A,
    NodeClient,
    batch,
    make_config,
    message,
    row_counts,
    stored_msg_ids,
)
from tests.relay_app.inbox.harness import Relay as InboxRelay
from tests.relay_app.inbox.harness import start_relay as start_inbox_relay

GIB = 1024**3


class FakeDisk:
    """Free space the test sets at will."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self) -> int:
        return self.free


def test_below_the_free_space_floor_every_write_gets_507_and_reads_still_work(
    relay_factory: RelayFactory, data_dir: Path
) -> None:
    disk = FakeDisk(10 * GIB)
    relay = relay_factory(make_config(data_dir, min_free_bytes=GIB), free_bytes=disk)
    client = NodeClient(relay.url, NODE_A)
    try:
        stored = message()
        assert client.send(stored).status_code == 200
        disk.free = GIB - 1
        before = row_counts(data_dir)
        writes = [
            client.send(message()),
            client.send_batch(batch([message() for _ in range(5)], "during-full")),
            client.post("/sync/status", json={"node_id": NODE_A, "agents": []}),
            client.post("/sync/files", data={"agent_id": "a-1"}, files={"file": b"x"}),
        ]
        for response in writes:
            assert response.status_code == 507
            assert "min_free_bytes" in response.json()["error"]
        assert row_counts(data_dir) == before
        assert client.get(f"/query/messages/{stored.msg_id}").status_code == 200
        assert client.query()["total"] == 1
        terse = requests.get(relay.url + "/healthz", timeout=10)
        assert (terse.status_code, terse.json()) == (503, {"status": "refusing"})
        health = client.get("/healthz").json()
        assert health["writes_accepted"] is False
        assert health["refusing"] == "disk_floor"
        disk.free = 2 * GIB
        assert client.send(message()).status_code == 200
        assert client.get("/healthz").json()["writes_accepted"]
    finally:
        client.close()


def test_one_gate_refuses_node_writes_files_and_inbox_actions_alike(tmp_path: Path) -> None:
    disk = FakeDisk(10 * GIB)
    gate = SpaceGate(disk, floor=GIB)  # the inbox harness's config says no floor at all
    relay = start_inbox_relay(tmp_path / "relay", gate=gate)
    try:
        assert relay.inbox.gate is gate
        report = relay.send(agent_id="scout-1")
        operator = relay.operator()
        act = {"csrf": relay.csrf(operator), "action": "execute", "msg_id": [report.msg_id]}
        node = relay.node()
        disk.free = GIB - 1
        refused = [
            node.post(f"{relay.url}/sync/message", json=message().to_wire(), timeout=10),
            node.post(f"{relay.url}/sync/files", data={"agent_id": "a-1"}, files={"f": b"x"}),
        ]
        page = operator.post(f"{relay.url}/messages/actions", data=act, timeout=10)
        assert [r.status_code for r in refused] == [507, 507]
        assert all("(relay.min_free_bytes)" in r.json()["error"] for r in refused)
        assert "Nothing changed" in page.text
        assert "(relay.min_free_bytes)" in page.text
        assert _follow_ups(relay) == 0
        disk.free = GIB
        assert operator.post(f"{relay.url}/messages/actions", data=act, timeout=10).ok
        assert _follow_ups(relay) == 1
    finally:
        relay.stop()


def _follow_ups(relay: InboxRelay) -> int:
    """The operator's follow-ups stored so far, as a node reads them."""
    answer = relay.node().get(f"{relay.url}/query/messages", params={"agent": "operator"})
    return int(answer.json()["total"])


def test_the_real_free_space_probe_is_used_by_default(
    relay_factory: RelayFactory, data_dir: Path
) -> None:
    relay = relay_factory(make_config(data_dir, min_free_bytes=2**62))
    client = NodeClient(relay.url, NODE_A)
    try:
        response = client.send(message())
        assert response.status_code == 507
        assert row_counts(data_dir)["messages"] == 0
    finally:
        client.close()


def test_a_full_database_gets_507_nothing_half_written_and_recovers_once_room_is_made(
    relay_factory: RelayFactory, data_dir: Path
) -> None:
    config = make_config(data_dir)
    pages = _page_count(SqliteStore(data_dir))
    relay = relay_factory(config, store=SqliteStore(data_dir, max_page_count=pages + 60))
    client = NodeClient(relay.url, NODE_A)
    try:
        acked: list[list[str]] = []
        refused: dict[str, object] = {}
        for n in range(200):
            envs = [message(content={"text": "x" * 400, "n": i}) for i in range(20)]
            body = batch(envs, f"fill-{n}")
            response = client.send_batch(body)
            if response.status_code == 507:
                refused = body
                assert "full" in response.json()["error"]
                break
            assert response.status_code == 200
            acked.append([e.msg_id for e in envs])
        assert refused, "the page limit was never reached"
        stored = set(stored_msg_ids(data_dir))
        assert all(msg_id in stored for ids in acked for msg_id in ids)
        refused_ids = {m["msg_id"] for m in refused["messages"]}  # type: ignore[attr-defined]
        assert not stored & refused_ids
        assert row_counts(data_dir)["batches"] == len(acked)
        assert client.query(limit=1)["total"] == len(stored)
        assert client.send_batch(refused).status_code == 507  # type: ignore[arg-type]
        _delete_oldest(relay, len(stored) // 2)
        assert client.send_batch(refused).json()["status"] == "acked"  # type: ignore[arg-type]
        assert refused_ids <= set(stored_msg_ids(data_dir))
    finally:
        client.close()


def _page_count(store: SqliteStore) -> int:
    conn = sqlite3.connect(store.path)
    try:
        return int(conn.execute("PRAGMA page_count").fetchone()[0])
    finally:
        conn.close()
        store.close()


def _delete_oldest(relay: RelayServer, count: int) -> None:
    """What an operator does to make room: delete old rows (freed pages are reused)."""
    conn = sqlite3.connect(Path(relay.config.relay.data_dir) / "messages" / "cluster_messages.db")
    try:
        conn.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT ?)",
            (count,),
        )
        conn.commit()
    finally:
        conn.close()
