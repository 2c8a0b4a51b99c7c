"""`since`/`until` windows: right answers whether the window is narrow or wide (its query
plans are in test_sqlite_plans)."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import requests

from relay_app.server import RelayServer
from runtime.core.envelope import MessageEnvelope
from tests.support import TOKENS, cluster

HEADERS = {"X-Commander-Node": "node-a", "Authorization": f"Bearer {TOKENS['node-a']}"}
# Enough rows that a wide window holds thousands and a narrow one ten.
COUNT = 6000
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
