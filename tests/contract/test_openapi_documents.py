"""The OpenAPI documents against the code: routes both ways, OpenAPI 3.1, real answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bottle
import pytest
import requests
import schemathesis
from schemathesis.core.result import Err
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from relay_app.ingest import Ingest
from relay_app.openapi import relay_document
from relay_app.server import RelayServer
from relay_app.store import MessageStore
from runtime.core.config import ClusterConfig, RelaySettings
from runtime.node import http as node_http
from runtime.node.http import create_node_app
from runtime.node.node import Node, NodeOptions
from runtime.node.openapi import node_document
from tests.contract.conftest import (
    AGENT,
    AGENT_HEADERS,
    NODE,
    NODE_HEADERS,
    Live,
    operator_cookie,
)
from tests.support import cluster

# Answered by relay_app.metrics.MetricsMiddleware in front of the Bottle app.
MIDDLEWARE_ROUTES = {("GET", "/metrics")}
_PARAM = re.compile(r"<(\w+)(?::[^>]*)?>")


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in a document."""
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item}


def served(app: bottle.Bottle) -> set[tuple[str, str]]:
    """(METHOD, path) of every Bottle route, with <name> written {name} as OpenAPI does."""
    return {(r.method, _PARAM.sub(r"{\1}", r.rule)) for r in app.routes}


class _CapturingRelay(RelayServer):
    app: bottle.Bottle | None = None

    def make_app(self, store: MessageStore, ingest: Ingest) -> bottle.Bottle:
        self.app = super().make_app(store, ingest)
        return self.app


@pytest.fixture
def config(tmp_path: Path) -> ClusterConfig:
    return cluster(tmp_path / "relay")


@pytest.fixture
def relay_app(config: ClusterConfig) -> Iterator[bottle.Bottle]:
    server = _CapturingRelay(config, host="127.0.0.1", port=0).start()
    assert server.app is not None
    yield server.app
    server.stop()


@pytest.fixture
def node_app(config: ClusterConfig, tmp_path: Path) -> Iterator[bottle.Bottle]:
    with Node(config, NODE, NodeOptions(data_dir=str(tmp_path / "node"))) as node:
        yield create_node_app(node, metrics=lambda: b"")


def test_every_relay_route_is_documented_and_every_documented_operation_is_served(
    relay_app: bottle.Bottle, config: ClusterConfig
) -> None:
    document = relay_document(config.relay)
    assert served(relay_app) - documented(document) == set()
    assert documented(document) - served(relay_app) == MIDDLEWARE_ROUTES


def test_every_node_route_is_documented_and_every_documented_operation_is_served(
    node_app: bottle.Bottle,
) -> None:
    assert served(node_app) == documented(node_document())


@pytest.mark.parametrize(
    "document", [relay_document(RelaySettings()), node_document()], ids=["relay", "node"]
)
def test_the_document_is_valid_openapi_3_1_and_loads_in_schemathesis(
    document: dict[str, Any],
) -> None:
    OPENAPI_31_VALIDATOR.validate(document)
    loaded = schemathesis.openapi.from_dict(document)
    errors = [r.err() for r in loaded.get_all_operations() if isinstance(r, Err)]
    assert errors == []


def test_each_process_serves_its_document_at_openapi_json(live: Live) -> None:
    relay = requests.get(live.relay.url + "/openapi.json", timeout=30)
    node = requests.get(live.node.url + "/openapi.json", timeout=30)
    assert relay.status_code == node.status_code == 200
    assert relay.headers["Content-Type"].startswith("application/json")
    assert relay.json()["paths"].keys() == relay_document(RelaySettings())["paths"].keys()
    limits = {"max_body": node_http.MAX_BODY, "max_limit": node_http.MAX_QUERY_LIMIT}
    assert node.json() == node_document(["a1", "a2"], **limits)


def _conforms(document: dict[str, Any], response: requests.Response) -> None:
    """Fail unless the answer's status, content type and body are the documented ones."""
    schema = schemathesis.openapi.from_dict(document)
    request = response.request
    path = requests.utils.urlparse(request.url).path
    operation = schema.find_operation_by_path(str(request.method), path)
    assert operation is not None, f"{request.method} {path} is not documented"
    documented_codes = operation.definition.raw["responses"]
    assert str(response.status_code) in documented_codes, (path, response.status_code)
    operation.validate_response(response)


def test_real_answers_of_the_relay_match_the_document(live: Live) -> None:
    document = requests.get(live.relay.url + "/openapi.json", timeout=30).json()
    node = requests.Session()
    node.headers.update(NODE_HEADERS)
    url = live.relay.url
    example = document["components"]["schemas"]["Message"]["examples"][0]
    message = {**example, "node_id": NODE, "agent_id": AGENT, "sender": AGENT}
    answers = [
        node.post(url + "/sync/message", json=message, timeout=30),
        node.post(url + "/sync/message", json={**message, "msg_id": "bad\nid"}, timeout=30),
        node.post(url + "/sync/message", json={**message, "node_id": "node-b"}, timeout=30),
        node.post(url + "/sync/message", json={**message, "agent_id": "b1"}, timeout=30),
        node.get(url + "/query/messages", params={"agent": "recruiter-001"}, timeout=30),
        node.get(url + "/query/messages", params={"limit": "x"}, timeout=30),
        node.get(url + f"/query/messages/{message['msg_id']}", timeout=30),
        node.get(url + "/query/messages/no-such-message", timeout=30),
        node.get(url + "/query/status", timeout=30),
        node.get(url + "/sync/mail", params={"for": ["a1", "recruiter"]}, timeout=30),
        node.get(url + "/sync/mail", params={"for": "b1"}, timeout=30),
        node.get(url + "/files/no-such-file", timeout=30),
        requests.get(url + "/query/status", timeout=30),
        requests.get(url + "/healthz", timeout=30),
        node.get(url + "/healthz", timeout=30),
        requests.get(url + "/api/unread_count", timeout=30),
        requests.get(url + "/metrics", timeout=30),
        requests.get(url + "/messages/api/updates", timeout=30),
        requests.get(url + "/messages/api/updates", timeout=30,
                     headers={"Cookie": operator_cookie(url)}),
    ]  # fmt: skip
    assert [a.status_code for a in answers] == [
        200, 400, 403, 403, 200, 400, 200, 404, 200, 200, 403, 404, 401, 200, 200, 200, 200,
        401, 200,
    ]  # fmt: skip
    for answer in answers:
        _conforms(document, answer)


def test_real_answers_of_the_node_match_the_document(live: Live) -> None:
    url = live.node.url
    agent = f"{url}/agents/{AGENT}"
    a1 = requests.Session()
    a1.headers.update(AGENT_HEADERS)
    written = a1.post(agent + "/messages", json={"content": {"n": 1}}, timeout=30)
    answers = [
        written,
        a1.post(agent + "/messages", json={"content": 1, "task_id": "x" * 999}, timeout=30),
        a1.post(agent + "/messages", json={"content": 1, "sender": "operator"}, timeout=30),
        a1.post(agent + "/messages", data='{"content": 1}', timeout=30),  # no Content-Type
        a1.post(f"{url}/agents/a2/messages", json={"content": 1}, timeout=30),
        requests.post(agent + "/messages", json={"content": 1}, timeout=30),
        a1.get(agent + "/messages/" + written.json()["msg_id"], timeout=30),
        a1.get(agent + "/messages", params={"limit": "2"}, timeout=30),
        a1.get(agent + "/messages", params={"since": "soon"}, timeout=30),
        a1.get(agent + "/status", headers={"Origin": "null"}, timeout=30),
        a1.get(agent + "/status", timeout=30),
        a1.get(agent + "/inbox", params={"wait": "0.1"}, timeout=30),
        a1.get(agent + "/inbox", params={"wait": "soon"}, timeout=30),
        a1.post(agent + "/inbox/ack", json={"cursor": 0}, timeout=30),
        a1.post(agent + "/inbox/ack", json={"cursor": -1}, timeout=30),
        a1.get(url + "/status", timeout=30),
        a1.post(url + "/outbox/retry-failed", timeout=30),
        requests.get(url + "/healthz", timeout=30),
        requests.get(url + "/healthz", headers={"Host": "rebound.example"}, timeout=30),
        requests.get(url + "/metrics", timeout=30),
    ]
    assert [a.status_code for a in answers] == [201, 400, 400, 415, 401, 401, 200, 200, 400,
                                                403, 200, 200, 400, 200, 400, 403, 403, 200,
                                                403, 200]  # fmt: skip
    for answer in answers:
        _conforms(node_document(), answer)
