"""`since`/`until` windows: right answers whether the window is narrow (index) or wide."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import orjson
import requests

from relay_app.server import RelayServer
from relay_app.store import MessageQuery
from relay_app.stores.sqlite import NARROW_WINDOW, _time_index_hint
from runtime.core.envelope import MessageEnvelope
from tests.support import TOKENS, cluster

HEADERS = {"X-Commander-Node": "node-a", "Authorization": f"Bearer {TOKENS['node-a']}"}
COUNT = NARROW_WINDOW + 1000
# Message times start here (inside the envelope rule's window of 2000-2100).
T0 = 1_700_000_000.0


def fill(url: str) -> None:
    for start in range(0, COUNT, 500):
        messages = [
            MessageEnvelope(
                msg_id=f"m-{i:06d}",
                timestamp=T0 + i,
                agent_id="a1",
                node_id="node-a",
                content={"i": i},
            ).to_wire()
            for i in range(start, min(COUNT, start + 500))
        ]
        body = orjson.dumps({"batch_id": f"b-{start}", "node_id": "node-a", "messages": messages})
        headers = {**HEADERS, "Content-Encoding": "gzip"}
        answer = requests.post(
            f"{url}/sync/messages", data=gzip.compress(body), headers=headers, timeout=30
        )
        assert answer.status_code == 200, answer.text


def query(url: str, **params: object) -> dict[str, object]:
    answer = requests.get(f"{url}/query/messages", params=params, headers=HEADERS, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_narrow_and_wide_windows_both_answer_correctly(tmp_path: Path) -> None:
    with RelayServer(cluster(tmp_path / "relay"), host="127.0.0.1", port=0) as relay:
        fill(relay.url)
        newest = T0 + COUNT - 1
        narrow = query(relay.url, since=newest - 9)
        assert narrow["total"] == 10
        assert [m["msg_id"] for m in narrow["messages"]][:2] == [
            f"m-{COUNT - 1:06d}",
            f"m-{COUNT - 2:06d}",
        ]
        assert query(relay.url, since=newest + 1)["total"] == 0
        wide = query(relay.url, since=T0, limit=5)
        assert wide["total"] == COUNT
        assert wide["messages"][0]["msg_id"] == f"m-{COUNT - 1:06d}"  # type: ignore[index]
        window = query(relay.url, since=T0 + 100, until=T0 + 110, order="asc")
        assert [m["msg_id"] for m in window["messages"]] == [f"m-{i:06d}" for i in range(100, 110)]


def test_only_a_narrow_window_gets_the_index_hint(tmp_path: Path) -> None:
    with RelayServer(cluster(tmp_path / "relay"), host="127.0.0.1", port=0) as relay:
        fill(relay.url)
    db = tmp_path / "relay" / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(db)
    try:
        narrow = MessageQuery(since=T0 + COUNT - 10)
        wide = MessageQuery(since=T0)
        assert "INDEXED BY" in _time_index_hint(conn, narrow)
        assert _time_index_hint(conn, wide) == ""
        assert _time_index_hint(conn, MessageQuery()) == ""
    finally:
        conn.close()


def test_filtered_pages_in_id_order_need_no_sort(tmp_path: Path) -> None:
    with RelayServer(cluster(tmp_path / "relay"), host="127.0.0.1", port=0):
        pass
    conn = sqlite3.connect(tmp_path / "relay" / "messages" / "cluster_messages.db")
    try:
        for column in ("agent_id", "node_id", "role", "priority", "status"):
            plan = conn.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM messages WHERE {column} = ?"
                " ORDER BY id DESC LIMIT 101",
                ("x",),
            ).fetchall()
            assert not any("TEMP B-TREE" in str(step) for step in plan), (column, plan)
    finally:
        conn.close()
