"""The node's doors (HTTP agent API and in-process API) apply the envelope rule.

What breaks the rule gets 400 (InvalidMessage in-process) naming the field, nothing is
stored and the node goes on; reads answer 200 over rows an older version cached.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from actors.cache_store import cache_path
from runtime.core.envelope import MAX_DEPTH, MessageEnvelope
from runtime.core.errors import InvalidMessage
from runtime.core.wsgi import ServerHandle, serve_in_thread
from runtime.node.doors import Door, with_door
from runtime.node.http import create_node_app
from runtime.node.node import Node, NodeOptions
from tests.runtime.test_node import NODE, cluster


def deep_json(levels: int) -> orjson.Fragment:
    return orjson.Fragment(b"[" * levels + b"1" + b"]" * levels)


def nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    with Node(cluster("a1", "a2"), NODE, NodeOptions(data_dir=str(tmp_path))) as node:
        # a1's own door (as on its Unix socket), served on TCP for the test's requests.
        app = with_door(create_node_app(node), Door("agent", "a1"))
        http: ServerHandle = serve_in_thread(app, "127.0.0.1", 0, name="node")
        try:
            yield node, f"{http.url}/agents/a1/messages"
        finally:
            http.stop()


def post(url: str, body: dict[str, Any]) -> requests.Response:
    json_body = {"Content-Type": "application/json"}
    return requests.post(url, data=orjson.dumps(body), headers=json_body, timeout=10)


# (case, body, words the error must contain)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("content 254 levels deep", {"content": deep_json(254)}, f"deeper than {MAX_DEPTH}"),
    ("content 65 levels deep", {"content": nest(MAX_DEPTH + 1)}, "content: nesting"),
    ("content over 1 MiB", {"content": "x" * (1 << 20)}, "content: 1048578 bytes"),
    ("no content", {"task_id": "t"}, "content: required"),
    ("a misspelled field", {"content": 1, "taskid": "t"}, "taskid: unknown field"),
    ("a role of its own", {"content": 1, "role": "admin"}, "role: unknown field"),
    ("a timestamp of its own", {"content": 1, "timestamp": 9.9e15}, "timestamp: unknown"),
    ("msg_id with a trailing newline", {"content": 1, "msg_id": "m-1\n"}, "msg_id"),
    ("task_id with a newline", {"content": 1, "task_id": "a\nb"}, "task_id: control"),
    ("recipient too long", {"content": 1, "recipient": "r" * 300}, "recipient: 300"),
    ("unknown priority", {"content": 1, "priority": "asap"}, "priority"),
]


@pytest.mark.parametrize(("body", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_write_breaking_the_rule_gets_400_naming_the_field_and_nothing_is_stored(
    served: tuple[Node, str], body: dict[str, Any], words: str
) -> None:
    node, url = served
    response = post(url, body)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert node.agent("a1").stats(timeout=5).message_count == 0
    assert post(url, {"content": {"still": "writing"}}).status_code == 201
    assert node.agent("a2").write({"other agent": "fine"}, timeout=5)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "-1"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1e23"}, "limit"),
        ({"limit": "99999999999999999999999"}, "limit"),
        ({"since": "nan"}, "since"),
        ({"since": "1e400"}, "since"),
        ({"after_id": "1"}, "after_id"),
        ({"task_id": "a\x00b"}, "task_id"),
    ],
)
def test_query_parameters_out_of_range_get_400_naming_them(
    served: tuple[Node, str], params: dict[str, str], name: str
) -> None:
    _, url = served
    response = requests.get(url, params=params, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(name)


def test_a_read_of_an_id_with_a_trailing_newline_is_refused(served: tuple[Node, str]) -> None:
    _, url = served
    msg_id = post(url, {"content": 1}).json()["msg_id"]
    assert requests.get(f"{url}/{msg_id}", timeout=10).status_code == 200
    response = requests.get(f"{url}/{msg_id}%0A", timeout=10)
    assert response.status_code == 400
    assert "msg_id" in response.json()["error"]


def test_reads_answer_200_over_a_row_cached_before_the_rule(
    served: tuple[Node, str], tmp_path: Path
) -> None:
    _, url = served
    assert post(url, {"content": "fresh"}).status_code == 201
    conn = sqlite3.connect(cache_path(tmp_path, "a1"))
    with conn:
        conn.execute(
            "INSERT INTO messages (msg_id, timestamp, content, synced, node_id, agent_id)"
            " VALUES ('old-deep', ?, ?, 1, ?, 'a1')",
            (time.time(), gzip.compress(b"[" * 300 + b"]" * 300), NODE),
        )
    conn.close()
    one = requests.get(f"{url}/old-deep", timeout=10)
    assert one.status_code == 200, one.text
    assert "cannot be encoded" in one.json()["content"]["error"]
    listed = requests.get(url, timeout=10)
    assert listed.status_code == 200, listed.text
    contents = {m["msg_id"]: m["content"] for m in listed.json()["messages"]}
    assert "fresh" in contents.values()
    assert "old-deep" in contents


class Colour(int):
    """An int subclass: stored as its plain value."""


class Score(float):
    """A float subclass (orjson does not encode one itself)."""


class Name(str):
    """A str subclass, also as an object key (orjson refuses one by default)."""


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (nest(MAX_DEPTH + 1), "nesting deeper than 64 levels"),
        ({"a": float("nan")}, "NaN"),
        ([float("inf")], "NaN and infinite"),
        ({1: "x"}, "object key 1 is not a string"),
        ({"n": 2**64}, "64-bit range"),
        ({"when": datetime.datetime.now(datetime.UTC)}, "datetime is not a JSON value"),
        ({"s": {1, 2}}, "set is not a JSON value"),
        ("\ud800", "surrogates"),
        (b"bytes", "bytes is not a JSON value"),
    ],
)
def test_the_in_process_door_refuses_what_is_not_plain_json(
    served: tuple[Node, str], content: Any, words: str
) -> None:
    node, _ = served
    agent = node.agent("a1")
    with pytest.raises(InvalidMessage, match="content") as refused:
        agent.write(content, timeout=5)
    assert words in str(refused.value)
    assert agent.stats(timeout=5).message_count == 0


def test_the_in_process_door_stores_what_every_read_returns(served: tuple[Node, str]) -> None:
    node, url = served
    agent = node.agent("a1")
    content = {"pair": (1, 2), "n": Colour(7), "score": Score(0.5), Name("k"): Name("v")}
    msg_id = agent.write(content, timeout=5)
    got = agent.read(msg_id, timeout=5)
    assert got is not None
    assert got.content == {"pair": [1, 2], "n": 7, "score": 0.5, "k": "v"}
    assert {type(v) for v in got.content.values()} == {list, int, float, str}
    over_http = requests.get(f"{url}/{msg_id}", timeout=10).json()["content"]
    assert over_http == got.content


def test_the_in_process_door_names_an_unknown_field_and_a_bad_envelope(
    served: tuple[Node, str],
) -> None:
    node, _ = served
    agent = node.agent("a1")
    with pytest.raises(InvalidMessage) as unknown:
        agent.write("x", taks_id="t", timeout=5)
    assert unknown.value.field == "taks_id"
    built = MessageEnvelope(
        msg_id="m-1", timestamp=9.9e15, agent_id="a1", node_id=NODE, content="x"
    )
    with pytest.raises(InvalidMessage) as far:
        agent.write_envelope(built, timeout=5)
    assert far.value.field == "timestamp"
    assert agent.stats(timeout=5).message_count == 0
    for bad in ("../status", "m-1\n", ""):
        with pytest.raises(InvalidMessage) as bad_id:
            agent.read(bad, timeout=5)
        assert bad_id.value.field == "msg_id"


@pytest.mark.parametrize(
    ("field", "value"),
    [("sender", "operator"), ("sender", "a2"), ("role", "commander"), ("node_id", "other")],
)
def test_an_agent_cannot_write_as_another_in_process(
    served: tuple[Node, str], field: str, value: str
) -> None:
    node, _ = served
    agent = node.agent("a1")
    with pytest.raises(InvalidMessage) as refused:
        agent.write("x", timeout=5, **{field: value})
    assert refused.value.field == field
    built = agent.new_message("x")
    with pytest.raises(InvalidMessage) as forged:
        agent.write_envelope(dataclasses.replace(built, **{field: value}), timeout=5)
    assert forged.value.field == field
    assert agent.write("x", sender="a1", timeout=5)  # naming itself is fine
    assert agent.stats(timeout=5).message_count == 1


def test_an_agent_cannot_write_as_another_over_http(served: tuple[Node, str]) -> None:
    node, url = served
    for body, field in (({"sender": "operator"}, "sender"), ({"role": "commander"}, "role")):
        response = post(url, {"content": "x", **body})
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(field)
    assert post(url, {"content": "x", "sender": "a1", "recipient": "operator"}).status_code == 201
    assert node.agent("a1").stats(timeout=5).message_count == 1


@pytest.mark.parametrize("query", ["task_id=%ff%fe", "%ff=1", "sender=caf%C3"])
def test_a_query_string_that_is_not_utf8_is_no_500(served: tuple[Node, str], query: str) -> None:
    _, url = served
    response = requests.get(f"{url}?{query}", timeout=10)
    assert response.status_code in (200, 400), response.text  # U+FFFD: refused or no match
