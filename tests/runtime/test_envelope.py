"""The message envelope: ids, validation and the content codec."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import pytest

from runtime.core.envelope import MessageEnvelope, decode_content, encode_content, new_msg_id
from runtime.core.errors import InvalidMessage


def test_msg_ids_are_uuid7_and_ordered_by_time() -> None:
    first, second = new_msg_id(1000.0), new_msg_id(1001.0)
    assert uuid.UUID(first).version == 7
    assert first < second


def test_new_envelope_gets_id_timestamp_and_sender() -> None:
    env = MessageEnvelope.new(
        agent_id="a1", node_id="n1", content={"k": 1}, clock=lambda: 1_700_000_042.0
    )
    assert env.timestamp == 1_700_000_042.0
    assert env.sender == "a1"
    assert env.priority == "normal"


@pytest.mark.parametrize(
    "content", [{"text": "héllo", "n": [1, 2.5, None, True]}, "plain", [], 7, None]
)
def test_content_round_trips_through_gzip_json(content: Any) -> None:
    blob = encode_content(content)
    assert blob[:2] == b"\x1f\x8b"
    assert decode_content(blob) == content


def test_a_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b'"' + b"a" * (20 * 1024 * 1024) + b'"')
    with pytest.raises(InvalidMessage, match="exceeds"):
        decode_content(bomb)


def test_wire_form_round_trips() -> None:
    env = MessageEnvelope.new(agent_id="a1", node_id="n1", content={"x": 1}, task_id="t1")
    assert MessageEnvelope.from_wire(env.to_wire()) == env


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"msg_id": "../etc"}, "msg_id"),
        ({"agent_id": "a/b"}, "agent_id"),
        ({"node_id": ""}, "node_id"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": float("nan")}, "timestamp"),
        ({"priority": "urgentest"}, "priority"),
        ({"task_id": 5}, "task_id"),
        ({"sender": "x" * 300}, "sender"),
        ({"recipient": "a\x00b"}, "recipient"),
    ],
)
def test_invalid_wire_fields_are_named(change: dict[str, Any], field: str) -> None:
    wire = MessageEnvelope.new(agent_id="a1", node_id="n1", content=1).to_wire()
    wire.update(change)
    with pytest.raises(InvalidMessage) as info:
        MessageEnvelope.from_wire(wire)
    assert info.value.field == field


@pytest.mark.parametrize("missing", ["msg_id", "timestamp", "agent_id", "node_id", "content"])
def test_missing_required_fields_are_named(missing: str) -> None:
    wire = MessageEnvelope.new(agent_id="a1", node_id="n1", content=1).to_wire()
    del wire[missing]
    with pytest.raises(InvalidMessage) as info:
        MessageEnvelope.from_wire(wire)
    assert info.value.field == missing


def test_a_non_object_is_refused() -> None:
    with pytest.raises(InvalidMessage):
        MessageEnvelope.from_wire([1, 2])
