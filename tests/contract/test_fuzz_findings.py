"""What the fuzzers found, each pinned as the concrete request that showed it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from runtime.core.envelope import new_msg_id
from tests.contract.conftest import NODE, NODE_HEADERS, Live


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
