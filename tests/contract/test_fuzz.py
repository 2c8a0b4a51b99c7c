"""Schema-driven fuzzing of a live relay and a live node, bounded in time.

No 5xx, every answer as documented, and the process still answers /healthz afterwards.
For a deeper run: COMMANDER_FUZZ_EXAMPLES=1000 COMMANDER_FUZZ_SECONDS=1800 (see README).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.contract.conftest import AGENT, AGENT_TOKEN, NODE, NODE_AUTH, Live, operator_session
from tests.contract.fuzzing import SECONDS, fuzz, pin

# The run stops itself after SECONDS; the margin covers start-up and the last requests.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(SECONDS + 300)]


def _document(url: str) -> dict[str, Any]:
    response = requests.get(url + "/openapi.json", timeout=30)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _short_waits(document: dict[str, Any]) -> dict[str, Any]:
    """Long polls answer at once: without `wait` (a fuzzed 30 s would pass the request timeout;
    a narrowed maximum would count the server's 200 to 1.2 s as a schema violation accepted)."""
    for item in document["paths"].values():
        for operation in item.values():
            params = operation.get("parameters", [])
            operation["parameters"] = [p for p in params if p["name"] != "wait"]
    return document


def _healthy(url: str) -> bool:
    return requests.get(url + "/healthz", timeout=5).status_code == 200


def test_fuzzing_the_relay_as_a_node_and_an_operator_finds_no_5xx_and_no_undocumented_answer(
    live: Live,
) -> None:
    url = live.relay.url
    auth = {**NODE_AUTH, "operatorSession": {"api_key": operator_session(url)}}
    # Messages of the node's own agents are stored (another agent's get 403, as documented).
    document = pin(pin(_document(url), "node_id", [NODE]), "agent_id", [AGENT, "a2"])
    _short_waits(document)
    report = fuzz(document, url, auth)
    assert report.failures == []
    assert report.errors == []
    assert report.requests > 100
    assert _healthy(url)


def test_fuzzing_the_node_finds_no_5xx_and_no_undocumented_answer(live: Live) -> None:
    url = live.node.url
    # a1's token over TCP; agent_id pinned to a1, so the fuzz gets past the door.
    document = _short_waits(_document(url))
    for item in document["paths"].values():
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["name"] == "agent_id":
                    param["schema"]["enum"] = [AGENT]
    report = fuzz(document, url, {"agentToken": {"bearer": AGENT_TOKEN}})
    assert report.failures == []
    assert report.errors == []
    assert report.requests > 50
    assert _healthy(url)
