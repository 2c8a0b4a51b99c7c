"""What the fuzzers found, each pinned as the concrete request that showed it."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import requests

from runtime.core.envelope import new_msg_id
from tests.contract.conftest import AGENT, NODE, NODE_HEADERS, Live


def _message(**fields: Any) -> dict[str, Any]:
    base = {"msg_id": new_msg_id(), "timestamp": 1.8e9, "agent_id": "a1", "node_id": NODE,
            "content": {"n": 1}}  # fmt: skip
    return {**base, **fields}


@pytest.mark.parametrize("priority", [False, 0, "", [], {}])
def test_the_relay_refuses_a_priority_that_is_neither_a_known_one_nor_null(
    live: Live, priority: Any
) -> None:
    sent = _message(priority=priority)
    response = requests.post(
        live.relay.url + "/sync/message", json=sent, headers=NODE_HEADERS, timeout=30
    )
    assert response.status_code == 400
    assert "priority" in response.json()["error"]
    stored = requests.get(
        f"{live.relay.url}/query/messages/{sent['msg_id']}", headers=NODE_HEADERS, timeout=30
    )
    assert stored.status_code == 404


def test_the_relay_still_takes_a_null_priority_as_normal(live: Live) -> None:
    sent = _message(priority=None)
    response = requests.post(
        live.relay.url + "/sync/message", json=sent, headers=NODE_HEADERS, timeout=30
    )
    assert response.status_code == 200, response.text
    stored = requests.get(
        f"{live.relay.url}/query/messages/{sent['msg_id']}", headers=NODE_HEADERS, timeout=30
    )
    assert stored.json()["priority"] == "normal"


@pytest.mark.parametrize("method", ["TRACE", "POST", "DELETE"])
def test_metrics_answers_405_naming_get_to_any_other_method(live: Live, method: str) -> None:
    response = requests.request(method, live.relay.url + "/metrics", timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert "error" in response.json()
    assert requests.head(live.relay.url + "/metrics", timeout=30).status_code == 200


def _raw_get(url: str, path: str, authorization: str) -> bytes:
    """The answer's status line to a GET whose Authorization value is sent byte for byte."""
    host, port = url.split("//")[1].split(":")
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        return sock.recv(4096).split(b"\r\n", 1)[0]


def test_a_control_character_in_a_header_is_a_documented_400_on_every_operation(
    live: Live,
) -> None:
    """The fuzzer sent `Authorization: Bearer \\x01…` to GET /agents/a1/status: the front
    answered 400, which that operation did not document. Every operation documents it now."""
    assert _raw_get(live.node.url, f"/agents/{AGENT}/status", "Bearer \x01x") == (
        b"HTTP/1.1 400 Bad Request"
    )
    assert _raw_get(live.relay.url, "/query/messages", "Bearer \x7f") == b"HTTP/1.1 400 Bad Request"
    for url in (live.node.url, live.relay.url):
        document = requests.get(url + "/openapi.json", timeout=30).json()
        undocumented = [
            f"{method.upper()} {path}"
            for path, item in document["paths"].items()
            for method, operation in item.items()
            if "400" not in operation["responses"]
        ]
        assert undocumented == [], url
