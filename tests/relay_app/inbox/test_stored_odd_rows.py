"""Rows an older version (or a bug) stored never break a read: every page and endpoint 200.

The rows go straight into the cluster database, as a version without today's envelope
rule would have written them: content nested deeper than orjson encodes, timestamps
far outside any date, content that is not gzip, control characters in text fields.
"""

from __future__ import annotations

import gzip
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from runtime.core.envelope import MAX_DEPTH
from tests.relay_app.inbox.harness import Relay
from tests.support import wait_for

AGENT = "agent-old"


def nested(levels: int) -> bytes:
    """JSON text of `levels` arrays inside each other around a word the search can find."""
    return b"[" * levels + b'"zanzibar"' + b"]" * levels


def old_rows() -> list[dict[str, Any]]:
    """(msg_id, timestamp, content blob, task_id) of rows no door accepts today."""
    deep = gzip.compress(nested(300))
    return [
        {"msg_id": "old-deep-300", "timestamp": time.time(), "content": deep},
        {"msg_id": "old-deep-1100", "timestamp": time.time(),
         "content": gzip.compress(nested(1100))},
        {"msg_id": "old-far-future", "timestamp": 9.9e15, "content": gzip.compress(b'"far"')},
        {"msg_id": "old-infinite", "timestamp": float("inf"), "content": gzip.compress(b"1")},
        {"msg_id": "old-far-past", "timestamp": -1e300, "content": gzip.compress(b"2")},
        {"msg_id": "old-text-time", "timestamp": "noon", "content": gzip.compress(b"3")},
        {"msg_id": "old-not-gzip", "timestamp": time.time(), "content": b"not gzip at all"},
        {"msg_id": "old-controls", "timestamp": time.time(), "content": gzip.compress(b"{}"),
         "task_id": "t\x1b[31m\u2028\x00"},
    ]  # fmt: skip


def insert(db: Path, rows: list[dict[str, Any]]) -> None:
    """Insert rows directly, bypassing every door (what an older relay left behind)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO messages (msg_id, timestamp, task_id, content, node_id, agent_id,"
                " received_at) VALUES (?, ?, ?, ?, 'node-a', ?, ?)",
                [
                    (r["msg_id"], r["timestamp"], r.get("task_id"), r["content"], AGENT,
                     r["timestamp"] if isinstance(r["timestamp"], float) else 0.0)
                    for r in rows
                ],
            )  # fmt: skip
    finally:
        conn.close()


ODD_AGENTS = [
    1,
    "text",
    {"agent_id": "a", "cache_bytes_used": 1.7e308, "cache_max_bytes": 1, "failed_batches": 1e300,
     "last_sync_at": 9.9e15, "oldest_unsynced_age_s": 1e300, "outbox_depth": -5},
]  # fmt: skip


def insert_reports(db: Path) -> None:
    """Node reports no version should have stored: not JSON, not a list, numbers past dates."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO node_status (node_id, sent_at, received_at, agents) VALUES (?,?,?,?)",
                [
                    ("node-not-json", 1.0, "noon", "not json"),
                    ("node-an-object", 1.0, 1e300, '{"a": 1}'),
                    ("node-odd-values", 9.9e15, time.time(), orjson.dumps(ODD_AGENTS).decode()),
                ],
            )
    finally:
        conn.close()


@pytest.fixture
def odd(inbox_relay: Relay) -> tuple[Relay, requests.Session]:
    inbox_relay.send(content={"note": "a normal message beside the odd ones"})
    insert(inbox_relay.sqlite_path, old_rows())
    insert_reports(inbox_relay.sqlite_path)
    inbox_relay.inbox.writer.index_soon()
    wait_for(lambda: _indexed(inbox_relay), timeout=10)
    return inbox_relay, inbox_relay.operator()


def _indexed(relay: Relay) -> bool:
    return relay.store.inbox.unindexed(1) is None


INBOX_PAGES = [
    "/messages",
    "/messages?status=unread",
    "/messages?status=all",
    f"/messages?agent={AGENT}",
    "/messages?q=zanzibar",
    "/messages?q=far",
    "/messages?range=24h",
    "/messages/nodes",
    "/messages/api/updates?after_id=0",
    "/messages/api/updates?after_id=0&q=zanzibar",
    f"/messages/api/updates?after_id=0&agent={AGENT}",
    "/api/unread_count",
]


@pytest.mark.parametrize("path", INBOX_PAGES)
def test_every_inbox_page_answers_200_over_rows_an_older_version_stored(
    odd: tuple[Relay, requests.Session], path: str
) -> None:
    relay, operator = odd
    response = operator.get(relay.url + path, timeout=10)
    assert response.status_code == 200, response.text[:500]


def test_node_status_reads_answer_200_over_reports_no_version_should_have_stored(
    odd: tuple[Relay, requests.Session],
) -> None:
    relay, operator = odd
    api = relay.node("node-a").get(f"{relay.url}/query/status", timeout=10)
    assert api.status_code == 200, api.text[:300]
    nodes = {n["node_id"]: n["agents"] for n in api.json()["nodes"]}
    assert nodes["node-not-json"] == []
    assert nodes["node-an-object"] == []
    assert [a["agent_id"] for a in nodes["node-odd-values"]] == ["a"]
    panel = operator.get(f"{relay.url}/messages/nodes", timeout=10)
    assert panel.status_code == 200
    assert "node-odd-values" in panel.text


def test_the_inbox_lists_every_odd_row_and_pages_through_them(
    odd: tuple[Relay, requests.Session],
) -> None:
    relay, operator = odd
    seen: set[str] = set()
    url: str | None = relay.url + "/messages?status=all"
    for _ in range(10):
        assert url is not None
        page = operator.get(url, timeout=10)
        assert page.status_code == 200, page.text[:500]
        seen.update(re.findall(r'data-msg-id="([^"]+)"', page.text))
        older = re.search(r'href="([^"]+)" rel="next"', page.text)
        url = relay.url + older.group(1).replace("&amp;", "&") if older else None
        if url is None:
            break
    assert {r["msg_id"] for r in old_rows()} <= seen


@pytest.mark.parametrize("row", old_rows(), ids=lambda r: r["msg_id"])
def test_the_detail_page_of_each_odd_row_answers_200(
    odd: tuple[Relay, requests.Session], row: dict[str, Any]
) -> None:
    relay, operator = odd
    response = operator.get(f"{relay.url}/messages/m/{row['msg_id']}", timeout=10)
    assert response.status_code == 200, response.text[:500]
    assert row["msg_id"] in response.text


def test_a_time_that_is_no_date_is_shown_as_invalid(odd: tuple[Relay, requests.Session]) -> None:
    relay, operator = odd
    for msg_id in ("old-far-future", "old-infinite", "old-far-past", "old-text-time"):
        page = operator.get(f"{relay.url}/messages/m/{msg_id}", timeout=10).text
        assert "invalid time" in page, msg_id


def test_query_messages_passes_stored_content_through_whatever_its_depth(
    odd: tuple[Relay, requests.Session],
) -> None:
    relay, _ = odd
    node = relay.node("node-a")
    listing = node.get(f"{relay.url}/query/messages", params={"limit": 100}, timeout=10)
    assert listing.status_code == 200, listing.text[:500]
    assert nested(1100) in listing.content  # returned as stored, not re-encoded
    for row in old_rows():
        one = node.get(f"{relay.url}/query/messages/{row['msg_id']}", timeout=10)
        assert one.status_code == 200, (row["msg_id"], one.text[:300])
    deep = orjson.loads(node.get(f"{relay.url}/query/messages/old-deep-300", timeout=10).content)
    inner = deep["content"]
    for _ in range(300):
        inner = inner[0]
    assert inner == "zanzibar"
    broken = orjson.loads(node.get(f"{relay.url}/query/messages/old-not-gzip", timeout=10).content)
    assert "cannot be decoded" in broken["content"]["error"]


def follow_ups(relay: Relay) -> dict[str, dict[str, Any]]:
    """The operator's follow-ups, by the report they answer."""
    listing = relay.node("node-a").get(
        relay.url + "/query/messages", params={"agent": "operator"}, timeout=10
    )
    assert listing.status_code == 200, listing.text
    return {m["content"]["in_reply_to"]: m for m in listing.json()["messages"]}


@pytest.mark.parametrize("msg_id", ["old-deep-300", "old-controls", "old-not-gzip"])
def test_executing_an_odd_row_stores_a_follow_up_that_refers_to_it_by_id(
    odd: tuple[Relay, requests.Session], msg_id: str
) -> None:
    relay, operator = odd
    data = {"csrf": relay.csrf(operator), "one": f"execute:{msg_id}"}
    response = operator.post(relay.url + "/messages/actions", data=data, timeout=10)
    assert response.status_code == 200, response.text[:500]
    made = follow_ups(relay)[msg_id]
    assert made["recipient"] == AGENT
    if msg_id == "old-deep-300":
        assert "cannot be quoted" in made["content"]["report_omitted"]
    if msg_id == "old-controls":
        assert made["task_id"] is None  # the stored task_id breaks today's rule


def test_executing_a_report_at_the_depth_limit_refers_to_it_by_id(
    inbox_relay: Relay,
) -> None:
    limit: Any = "deepest"
    for _ in range(MAX_DEPTH):
        limit = [limit]
    report = inbox_relay.send(content=limit)
    operator = inbox_relay.operator()
    data = {"csrf": inbox_relay.csrf(operator), "one": f"execute:{report.msg_id}"}
    response = operator.post(inbox_relay.url + "/messages/actions", data=data, timeout=10)
    assert response.status_code == 200
    made = follow_ups(inbox_relay)[report.msg_id]
    assert "nesting deeper than" in made["content"]["report_omitted"]
