"""Whatever a door accepts goes all the way unchanged; whatever one door refuses, all do.

One real relay (SQLite in tmp_path, the inbox on, HTTP on 127.0.0.1) and one real node
pushing to it, with its HTTP agent API served on 127.0.0.1. Hypothesis generates
envelopes near every limit of the rule: deep, large, any unicode, extreme numbers,
edge timestamps.
"""

from __future__ import annotations

import gzip
import html
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay_app.store import MessageQuery
from runtime.core.config import AgentConfig, CacheConfig, ClusterConfig, NodeEntry, RelaySettings
from runtime.core.envelope import (
    MAX_CONTENT_BYTES,
    MAX_DEPTH,
    MAX_TEXT,
    PRIORITIES,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    MessageEnvelope,
)
from runtime.core.errors import InvalidMessage
from runtime.core.wsgi import serve_unix_in_thread
from runtime.node.client import NodeClient
from runtime.node.doors import Door, with_door
from runtime.node.http import create_node_app
from runtime.node.node import Node, NodeOptions
from tests.relay_app.inbox.harness import NODES, Relay, start_relay
from tests.support.json_values import JSON, SCALARS

NODE = "node-a"
AGENT = "a1"
WAIT_S = 10.0

# Envelope text fields: no controls, no line separators, no surrogates.
FIELD_TEXT = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\u2028\u2029")


def _wrap(levels: int, leaf: Any, as_object: bool) -> Any:
    for level in range(levels):
        leaf = {f"level{level}": leaf} if as_object else [leaf]
    return leaf


DEEP = st.builds(_wrap, st.integers(MAX_DEPTH - 4, MAX_DEPTH), SCALARS, st.booleans())
# One string whose JSON is just under the size limit, in characters of 1, 2 and 4 bytes.
LARGE = st.sampled_from([("x", 1), ("é", 2), ("😀", 4)]).flatmap(
    lambda c: st.integers(1, 64).map(lambda s: c[0] * ((MAX_CONTENT_BYTES - 2) // c[1] - s))
)
CONTENT = st.one_of(JSON, JSON, DEEP, LARGE)
TIMESTAMPS = st.one_of(
    st.floats(TIMESTAMP_MIN, TIMESTAMP_MAX, exclude_max=True),
    st.sampled_from([TIMESTAMP_MIN, math.nextafter(TIMESTAMP_MAX, 0.0), 1_764_547_200]),
)
OPTIONAL_TEXT = st.none() | st.text(FIELD_TEXT, max_size=MAX_TEXT)


@dataclass
class Cluster:
    """A relay with the inbox, a node pushing to it, and the node's HTTP agent API."""

    relay: Relay
    node: Node
    client: NodeClient
    operator: requests.Session


@contextmanager
def cluster(root: Path) -> Iterator[Cluster]:
    relay = start_relay(root / "relay")
    agents = (
        AgentConfig(agent_id=AGENT, role="coder", node_id=NODE, cache=CacheConfig(max_bytes=2**34)),
    )
    config = ClusterConfig(
        nodes=(NodeEntry(id=NODE, host="127.0.0.1", port=9),), relay=RelaySettings(), agents=agents
    )
    options = NodeOptions(data_dir=str(root / "node"), relay_url=relay.url, token=NODES[NODE])
    node = Node(config, NODE, options).start()
    app = with_door(create_node_app(node), Door("agent", AGENT))
    socket_path = root / f"{AGENT}.sock"
    http = serve_unix_in_thread(app, socket_path, name="node-api")
    client = NodeClient(f"unix:{socket_path}", AGENT)
    try:
        yield Cluster(relay, node, client, relay.operator())
    finally:
        client.close()
        http.stop()
        node.stop()
        relay.stop()


def relay_copy(relay: Relay, msg_id: str) -> dict[str, Any] | None:
    response = relay.node(NODE).get(f"{relay.url}/query/messages/{msg_id}", timeout=10)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text[:300]
    return dict(orjson.loads(response.content))


def wait_on_relay(relay: Relay, msg_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = relay_copy(relay, msg_id)
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{msg_id} did not reach the relay within {WAIT_S} s")


def assert_everywhere(c: Cluster, expected: dict[str, Any]) -> None:
    """The message reads back unchanged from the cache, the relay, its list and the inbox."""
    msg_id = expected["msg_id"]
    cached = c.node.agent(AGENT).read(msg_id, timeout=10)
    assert cached is not None
    assert cached.to_wire() == expected
    on_relay = wait_on_relay(c.relay, msg_id)
    assert {k: on_relay[k] for k in expected} == expected
    listed = c.relay.node(NODE).get(
        f"{c.relay.url}/query/messages", params={"msg_id": msg_id}, timeout=10
    )
    assert listed.status_code == 200
    [row] = orjson.loads(listed.content)["messages"]
    assert {k: row[k] for k in expected} == expected
    page = c.operator.get(f"{c.relay.url}/messages/m/{msg_id}", timeout=10)
    assert page.status_code == 200
    shown = orjson.dumps(expected["content"], option=orjson.OPT_INDENT_2).decode()
    assert html.escape(shown) in page.text


def test_any_envelope_a_door_accepts_is_stored_uploaded_listed_rendered_and_read_unchanged(
    tmp_path: Path,
) -> None:
    seen = {"over_http": 0, "in_process": 0, "large": 0, "deep": 0}
    with cluster(tmp_path) as c:

        @settings(
            max_examples=100,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            content=CONTENT,
            timestamp=TIMESTAMPS,
            task_id=OPTIONAL_TEXT,
            recipient=OPTIONAL_TEXT,
            priority=st.sampled_from(PRIORITIES),
            over_http=st.booleans(),
        )
        def roundtrip(
            content: Any,
            timestamp: float,
            task_id: str | None,
            recipient: str | None,
            priority: str,
            over_http: bool,
        ) -> None:
            fields = {"task_id": task_id, "recipient": recipient, "priority": priority}
            if over_http:  # the node's HTTP agent API: the node sets the timestamp
                msg_id = c.client.write(content, **fields)
            else:  # the in-process API, with an envelope built by the caller
                env = MessageEnvelope(
                    msg_id=f"m-{time.time_ns()}", timestamp=timestamp, agent_id=AGENT,
                    node_id=NODE, content=content, sender=AGENT, role="coder", **fields,
                )  # fmt: skip
                msg_id = c.node.agent(AGENT).write_envelope(env, timeout=10)
            stored = c.node.agent(AGENT).read(msg_id, timeout=10)
            assert stored is not None
            expected = stored.to_wire()
            assert expected["content"] == content
            assert {k: expected[k] for k in fields} == fields
            if not over_http:
                assert expected["timestamp"] == timestamp
            assert_everywhere(c, expected)
            seen["over_http" if over_http else "in_process"] += 1
            seen["large"] += len(orjson.dumps(content)) > MAX_CONTENT_BYTES // 2
            seen["deep"] += depth(content) >= MAX_DEPTH - 4

        roundtrip()
    # Every kind of example went the whole way at least once.
    assert min(seen.values()) > 0, seen


def depth(value: Any) -> int:
    """How many arrays and objects nest in `value`."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@dataclass(frozen=True)
class Breach:
    """One field set to a value that breaks the rule."""

    field: str
    value: Any

    def __repr__(self) -> str:
        return f"Breach({self.field!r}, {repr(self.value)[:200]})"


NOT_FIELDS = {"content", "timeout", "msg_id", "task_id", "sender", "recipient", "priority",
              "role", "timestamp", "agent_id", "node_id"}  # fmt: skip
TEXT_BREACHES = st.one_of(
    st.text(FIELD_TEXT, min_size=MAX_TEXT + 1, max_size=MAX_TEXT + 40),
    st.tuples(st.text(FIELD_TEXT, max_size=20), st.sampled_from("\x00\n\r\x1b\x7f\x85\u2028")).map(
        "".join
    ),
    st.integers() | st.lists(st.integers(), max_size=2),
)
BREACHES = st.one_of(
    st.builds(Breach, st.just("content"), st.builds(
        _wrap, st.integers(MAX_DEPTH + 1, MAX_DEPTH + 20), SCALARS, st.booleans())),
    st.builds(Breach, st.just("content"), st.integers(MAX_CONTENT_BYTES - 1, MAX_CONTENT_BYTES + 99)
              .map(lambda n: "x" * n)),
    st.builds(Breach, st.sampled_from(["task_id", "sender", "recipient"]), TEXT_BREACHES),
    st.builds(Breach, st.just("priority"), st.text(max_size=12).filter(
        lambda p: p not in PRIORITIES)),
    st.builds(Breach, st.just("msg_id"), st.sampled_from(
        ["m-1\n", "-m", "a/b", "../x", "x" * 129, "m 1", "m\u00e9", "m-1\r\n"])),
    st.builds(Breach, st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
              .filter(lambda n: n not in NOT_FIELDS), st.integers()),
)  # fmt: skip


def refusals(c: Cluster, breach: Breach) -> dict[str, tuple[str, str]]:
    """(field, reason) each door gave when refusing; AssertionError if one accepted."""
    found: dict[str, tuple[str, str]] = {}
    fields = {"content": {"ok": True}, breach.field: breach.value}
    content = fields.pop("content")
    try:
        c.node.agent(AGENT).write(content, timeout=10, **fields)
    except InvalidMessage as exc:
        found["in-process"] = (exc.field, exc.reason)
    answer = c.client.session.post(f"{c.client.base}/messages",
                                   json={"content": content, **fields}, timeout=10)  # fmt: skip
    found["node HTTP"] = _split(answer, "")
    wire = MessageEnvelope.new(agent_id=AGENT, node_id=NODE, content={"ok": True}).to_wire()
    wire[breach.field] = breach.value
    session, url = c.relay.node(NODE), c.relay.url
    found["relay single"] = _split(session.post(f"{url}/sync/message", json=wire, timeout=10),
                                   "message.")  # fmt: skip
    batch = {"batch_id": f"b-{time.time_ns()}", "node_id": NODE, "messages": [wire]}
    found["relay batch"] = _split(session.post(f"{url}/sync/messages", json=batch, timeout=10),
                                  "messages[0].")  # fmt: skip
    return found


def _split(answer: requests.Response, prefix: str) -> tuple[str, str]:
    assert answer.status_code == 400, answer.text[:300]
    error = str(answer.json()["error"])
    assert error.startswith(prefix), error[:300]
    field, _, reason = error[len(prefix) :].partition(": ")
    return field, reason


def test_what_one_door_refuses_every_door_refuses_naming_the_same_field(tmp_path: Path) -> None:
    seen: set[str] = set()
    with cluster(tmp_path) as c:

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(breach=BREACHES)
        def refused_everywhere(breach: Breach) -> None:
            found = refusals(c, breach)
            assert set(found) == {"in-process", "node HTTP", "relay single", "relay batch"}
            assert {field for field, _ in found.values()} == {breach.field[:64]}, found
            if breach.field in ("content", "task_id", "sender", "recipient", "priority"):
                assert len({reason for _, reason in found.values()}) == 1, found
            seen.add(breach.field)

        refused_everywhere()
        assert c.node.agent(AGENT).stats(timeout=10).message_count == 0
        assert c.relay.store.query_messages(MessageQuery()).total == 0
    assert {"content", "msg_id", "priority"} <= seen


def test_a_row_the_relay_took_under_an_older_rule_still_reads_through_the_node(
    tmp_path: Path,
) -> None:
    with cluster(tmp_path) as c:
        conn = sqlite3.connect(c.relay.store.path)
        with conn:
            conn.execute(
                "INSERT INTO messages (msg_id, timestamp, task_id, content, node_id, agent_id,"
                " received_at) VALUES ('old-far', 9.9e15, 'odd\x1btask', ?, ?, 'other', 0)",
                (gzip.compress(b'{"kept": true}'), NODE),
            )
        conn.close()
        read = c.node.agent(AGENT).read("old-far", timeout=10)  # a cache miss: from the relay
        assert read is not None
        assert (read.timestamp, read.task_id, read.content) == (
            9.9e15,
            "odd\x1btask",
            {"kept": True},
        )
        over_http = c.client.read("old-far")
        assert over_http is not None
        assert over_http.to_wire() == read.to_wire()
        with pytest.raises(InvalidMessage) as bad_id:
            c.client.read("../status")
        assert bad_id.value.field == "msg_id"
        with pytest.raises(InvalidMessage) as refused:
            c.client.write({"deep": _wrap(MAX_DEPTH + 1, 1, False)})
        assert refused.value.field == "content"
        assert "nesting deeper than" in refused.value.reason
