"""The relay's doors (single message and batch) apply the envelope rule: 400 naming the
field, nothing stored; numeric query parameters are range-checked (400, never 500)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay_app.stores.sqlite_rows import MAX_PAGE_BYTES
from runtime.core.envelope import MAX_CONTENT_BYTES, MAX_DEPTH
from tests.relay_app.helpers import NodeClient, batch, message, row_counts
from tests.relay_app.test_bad_input import MULTIPART, form


def nest(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def deep_json(levels: int) -> orjson.Fragment:
    return orjson.Fragment(b"[" * levels + b"1" + b"]" * levels)


def wire(**changes: Any) -> dict[str, Any]:
    data = message().to_wire()
    data.update(changes)
    return data


# (case, wire changes, words the error must contain)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # As raw JSON: with the envelope around it, 254 levels are past what orjson encodes.
    ("content 254 levels deep", {"content": deep_json(254)}, f"deeper than {MAX_DEPTH} levels"),
    ("content one level too deep", {"content": nest(MAX_DEPTH + 1)}, "deeper than"),
    ("content over the size limit", {"content": "x" * MAX_CONTENT_BYTES}, "bytes of JSON"),
    ("timestamp 9.9e15", {"timestamp": 9.9e15}, "timestamp: expected seconds"),
    ("timestamp in milliseconds", {"timestamp": 1.7e12}, "milliseconds"),
    ("timestamp before 2000", {"timestamp": 946684799.0}, "timestamp"),
    ("timestamp at 2100", {"timestamp": 4102444800.0}, "timestamp"),
    ("msg_id with a trailing newline", {"msg_id": "evil\n"}, "msg_id"),
    ("agent_id with a trailing newline", {"agent_id": "agent-1\n"}, "agent_id"),
    ("task_id with an escape sequence", {"task_id": "t\x1b[2J"}, "task_id: control"),
    ("role with a line separator", {"role": "a\u2028b"}, "role: control"),
    ("sender of 257 characters", {"sender": "s" * 257}, "sender: 257 characters"),
    ("a misspelled field", {"priorty": "high"}, "priorty: unknown field"),
    ("priority not a string", {"priority": ["high"]}, "priority"),
]

REFUSED_CASES = pytest.mark.parametrize(
    ("changes", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)


@REFUSED_CASES
def test_a_single_message_breaking_the_rule_gets_400_naming_the_field_and_nothing_is_stored(
    node_a: NodeClient, data_dir: Path, changes: dict[str, Any], words: str
) -> None:
    before = row_counts(data_dir)
    response = node_a.post("/sync/message", data=orjson.dumps(wire(**changes)))
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert row_counts(data_dir) == before


@REFUSED_CASES
def test_a_batch_with_one_message_breaking_the_rule_gets_400_and_stores_nothing(
    node_a: NodeClient, data_dir: Path, changes: dict[str, Any], words: str
) -> None:
    body = batch([message(), message()], "rule-batch")
    body["messages"].append(wire(**changes))
    before = row_counts(data_dir)
    response = node_a.post("/sync/messages", data=orjson.dumps(body))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("messages[2].")
    assert words in response.json()["error"]
    assert row_counts(data_dir) == before


def test_content_at_the_limits_is_stored_and_read_back_unchanged(node_a: NodeClient) -> None:
    edge = {
        "deep": nest(MAX_DEPTH - 1),
        "big": 2**64 - 1,
        "small": -(2**63),
        "tiny": 5e-324,
        "text": "é\u2028\U0001f600",
    }
    env = message(content=edge, task_id="t" * 256)
    assert node_a.send(env).status_code == 200
    got = node_a.get(f"/query/messages/{env.msg_id}")
    assert got.status_code == 200
    assert orjson.loads(got.content)["content"] == edge
    listed = node_a.query(task="t" * 256)
    assert [m["content"] for m in listed["messages"]] == [edge]


def cursor(**fields: Any) -> str:
    # The stdlib encoder writes any integer, as a forged cursor would.
    raw = json.dumps({"i": 5, "d": True, "p": 2, **fields}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"next": cursor(i=10**19)}, "next"),
        ({"next": cursor(i=-(10**19))}, "next"),
        ({"next": cursor(p=10**30)}, "next"),
        ({"next": cursor(i=1e23)}, "next"),
        ({"limit": "1e23"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"page": "١٢"}, "page"),
        ({"page": "99999999999999999999999"}, "page"),
        ({"since": "1e400"}, "since"),
        ({"until": "nan"}, "until"),
        ({"after_id": "1e23"}, "after_id"),
    ],
)
def test_numeric_query_parameters_out_of_range_get_400_naming_them(
    node_a: NodeClient, params: dict[str, str], name: str
) -> None:
    response = node_a.get("/query/messages", params=params)
    assert response.status_code == 400, response.text
    assert name in response.json()["error"]


def test_a_msg_id_with_a_trailing_newline_in_the_url_is_refused(node_a: NodeClient) -> None:
    env = message()
    assert node_a.send(env).status_code == 200
    response = node_a.get(f"/query/messages/{env.msg_id}%0A")
    assert response.status_code == 400, response.text
    assert "msg_id" in response.json()["error"]


@pytest.mark.parametrize("agent_id", [b"evil\n", b"evil\r\n", b"ok\n\n"])
def test_a_file_for_an_agent_id_with_a_trailing_newline_is_refused_and_no_directory_made(
    node_a: NodeClient, data_dir: Path, agent_id: bytes
) -> None:
    body = form(("agent_id", None, agent_id), ("file", "report.txt", b"data"))
    response = node_a.post("/sync/files", data=body, headers=MULTIPART)
    assert response.status_code == 400, response.text
    assert "agent_id" in response.json()["error"]
    files = data_dir / "files"
    made = [p.name for p in files.iterdir() if p.name != ".incoming"] if files.exists() else []
    assert made == []


def test_a_batch_with_a_misspelled_top_level_field_is_refused_naming_it(
    node_a: NodeClient, data_dir: Path
) -> None:
    body = batch([message()], "typo-batch")
    body["priorty"] = "high"
    before = row_counts(data_dir)
    response = node_a.post("/sync/messages", data=orjson.dumps(body))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("priorty: unknown field")
    assert row_counts(data_dir) == before


def test_a_page_of_large_messages_is_cut_by_bytes_and_next_resumes_it(
    node_a: NodeClient,
) -> None:
    # Random text, so gzip cannot shrink what the relay holds and sends.
    envs = [message(content=os.urandom(MAX_CONTENT_BYTES // 2 - 8).hex()) for _ in range(20)]
    for env in envs:
        assert node_a.send(env).status_code == 200
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1000, "order": "asc"}
    pages = 0
    while pages < 10:
        response = node_a.get("/query/messages", params=params)
        assert response.status_code == 200
        page = orjson.loads(response.content)
        assert len(response.content) < MAX_PAGE_BYTES + 2 * MAX_CONTENT_BYTES
        seen += [m["msg_id"] for m in page["messages"]]
        pages += 1
        if page["next"] is None:
            break
        params = {"next": page["next"], "limit": 1000}
    assert pages > 1
    assert seen == [e.msg_id for e in envs]


def test_a_message_whose_sender_is_not_its_agent_is_refused_403_and_nothing_stored(
    node_a: NodeClient, data_dir: Path
) -> None:
    # A node's agents write only as themselves (runtime.node.agent); a node that forges the
    # sender (a stolen token, a patched node) must not name the operator or another agent.
    forged = message(sender="operator")
    refused = [node_a.send(forged), node_a.send_batch(batch([message(), forged], "b-1"))]
    for response in refused:
        assert response.status_code == 403, response.text
        assert "sender: 'operator' is not the message's agent" in response.json()["error"]
    assert "messages[1].sender" in refused[1].json()["error"]
    assert row_counts(data_dir)["messages"] == 0
    assert node_a.send(message(sender="agent-1")).status_code == 200
    assert node_a.send(message(sender=None)).status_code == 200
