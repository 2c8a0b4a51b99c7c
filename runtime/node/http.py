"""The node's HTTP API: agents in other processes use their cache through it.

Served on Unix sockets (one per agent, and node.sock for the node-wide routes) and on
loopback TCP with per-agent tokens: runtime.node.doors decides who may call what.

POST /agents/<agent_id>/messages          write (answers after the local commit)
GET  /agents/<agent_id>/messages/<msg_id> read, local first, then the relay
GET  /agents/<agent_id>/messages          query: task_id, sender, recipient, since, limit
GET  /agents/<agent_id>/status            cache and outbox figures
GET  /agents/<agent_id>/inbox             receive mail (runtime.node.mail), POST .../inbox/ack
GET  /status                              every agent's figures
POST /outbox/retry-failed                 move failed batches back to pending
GET  /healthz                             200 "ok", or "degraded" naming agents down; else 503
GET  /metrics                             Prometheus text format
GET  /openapi.json                        this API as an OpenAPI 3.1 document
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import bottle
import orjson

from actors.messages import RetryFailed
from runtime.core.envelope import FORBIDDEN_TEXT, MAX_TEXT, MessageEnvelope
from runtime.core.errors import ActorUnavailable, CacheFull, InvalidMessage
from runtime.core.http_query import decoded_query
from runtime.core.ids import ID_RULE, is_id
from runtime.core.wsgi_bridge import read_at_most
from runtime.node.doors import DoorCheck
from runtime.node.mail import install_mail_routes
from runtime.node.node import Node
from runtime.node.openapi import node_document

logger = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
# An outbox answers between two HTTP calls of its own, each bounded by sync.timeout_seconds.
RETRY_TIMEOUT = 15.0
WRITE_FIELDS = ("task_id", "recipient", "priority", "sender")
WRITE_KEYS = ("content", "msg_id", *WRITE_FIELDS)
QUERY_TEXT = ("task_id", "sender", "recipient")
MAX_QUERY_LIMIT = 1000


def create_node_app(node: Node, metrics: Callable[[], bytes] | None = None) -> bottle.Bottle:
    """Build the app for one running node; serve it through `runtime.node.doors.with_door`.

    Each route's `scope` says who may call it (see runtime.node.doors).
    """
    app = bottle.Bottle()
    app.config["node"] = node
    app.install(DoorCheck())
    for code in (400, 401, 403, 404, 405, 413, 415, 500, 503):
        app.error(code)(_json_error)
    agent: dict[str, Any] = {"scope": "agent"}
    app.route(
        "/agents/<agent_id>/messages", "POST", lambda agent_id: _write(node, agent_id), **agent
    )
    app.route(
        "/agents/<agent_id>/messages/<msg_id>",
        "GET",
        lambda agent_id, msg_id: _read(node, agent_id, msg_id),
        **agent,
    )
    app.route(
        "/agents/<agent_id>/messages", "GET", lambda agent_id: _query(node, agent_id), **agent
    )
    app.route(
        "/agents/<agent_id>/status",
        "GET",
        lambda agent_id: _json(_agent_status(node, agent_id)),
        **agent,
    )
    install_mail_routes(app, node)
    app.route("/status", "GET", lambda: _json(node_status(node)), scope="node")
    app.route("/outbox/retry-failed", "POST", lambda: _retry_failed(node), scope="node")
    app.route("/healthz", "GET", lambda: _healthz(node), scope="open")
    app.route("/openapi.json", "GET", lambda: _json(_document(node)), scope="open")
    if metrics is not None:
        app.route("/metrics", "GET", lambda: _metrics(metrics), scope="open")
    return app


def _document(node: Node) -> dict[str, Any]:
    """This node's OpenAPI document: its agents and its limits."""
    return node_document(sorted(node.agents), max_body=MAX_BODY, max_limit=MAX_QUERY_LIMIT)


def _json(data: Any, status: int = 200) -> bytes:
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    return orjson.dumps(data)


def _json_error(error: bottle.HTTPError) -> bytes:
    bottle.response.content_type = "application/json"
    body = error.body if isinstance(error.body, str) and error.body else error.status_line
    return orjson.dumps({"error": body})


def _fail(status: int, text: str) -> bottle.HTTPError:
    return bottle.HTTPError(status, text)


def _handle(node: Node, agent_id: str) -> Any:
    if agent_id not in node.agents:
        raise _fail(404, f"agent {agent_id!r} is not configured on node {node.node_id}")
    return node.agents[agent_id]


def _body() -> Any:
    """The request's JSON body, read from wsgi.input within MAX_BODY.

    Not through `bottle.request.body`: Bottle spools a body over 100 KB to a temporary
    file it never closes (one leaked descriptor per large write until collected).
    """
    environ = bottle.request.environ
    length = bottle.request.content_length
    if length > MAX_BODY:
        raise _fail(413, f"body over {MAX_BODY} bytes")
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if length < 0 and not chunked:
        length = 0  # HTTP/1.1: no length and not chunked means no body
    try:
        raw = read_at_most(environ["wsgi.input"], MAX_BODY + 1 if length < 0 else length)
    except OSError as exc:  # the agent went away or was too slow: its doing, not a 500
        raise _fail(400, f"the body did not arrive whole: {exc}") from None
    if len(raw) > MAX_BODY:
        raise _fail(413, f"body over {MAX_BODY} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _fail(400, f"body is not valid JSON: {exc}") from None


def _write(node: Node, agent_id: str) -> bytes:
    agent = _handle(node, agent_id)
    data = _body()
    try:
        content, fields = _write_request(data)
        msg_id = agent.write(content, **fields)
    except InvalidMessage as exc:
        raise _fail(400, str(exc)) from None
    except CacheFull as exc:
        # The parts as well as the text, so a NodeClient raises the very same CacheFull.
        refusal = {"agent_id": exc.agent_id, "limit_bytes": exc.limit_bytes, "detail": exc.detail}
        return _json({"error": str(exc), **refusal}, 507)
    except ActorUnavailable as exc:
        return _json({"error": str(exc)}, 503)
    return _json({"status": "stored", "msg_id": msg_id}, 201)


def _write_request(data: Any) -> tuple[Any, dict[str, Any]]:
    """The content and fields of a write body; a field not in WRITE_KEYS is refused, not lost.

    A client may bring its own msg_id (a retry stays idempotent). The node sets
    timestamp, agent_id, node_id and role itself: an agent writes only as itself.
    """
    if not isinstance(data, dict):
        raise InvalidMessage("body", 'expected a JSON object with "content"')
    if "content" not in data:
        raise InvalidMessage("content", "required field is missing")
    unknown = sorted(key for key in data if key not in WRITE_KEYS)
    if unknown:
        raise InvalidMessage(
            unknown[0][:64], f"unknown field; a write has only {', '.join(WRITE_KEYS)}"
        )
    fields = {k: data[k] for k in ("msg_id", *WRITE_FIELDS) if data.get(k) is not None}
    return data["content"], fields


def _read(node: Node, agent_id: str, msg_id: str) -> bytes:
    agent = _handle(node, agent_id)
    if not is_id(msg_id):
        raise _fail(400, f"msg_id: {ID_RULE}")
    found = agent.read(msg_id)
    if found is None:
        raise _fail(404, f"no message {msg_id!r}")
    return _messages_json([found], single=True)


def _query(node: Node, agent_id: str) -> bytes:
    agent = _handle(node, agent_id)
    try:
        filters = _query_filters(decoded_query(bottle.request).dict)
    except InvalidMessage as exc:
        raise _fail(400, str(exc)) from None
    return _messages_json(agent.query(**filters))


def _query_filters(params: dict[str, list[str]]) -> dict[str, Any]:
    """Check the query string of GET /agents/<id>/messages; InvalidMessage names the parameter."""
    unknown = sorted(set(params) - {*QUERY_TEXT, "since", "limit"})
    if unknown:
        raise InvalidMessage(unknown[0][:64], "unknown query parameter")
    for name, values in params.items():
        if len(values) > 1:
            raise InvalidMessage(name, "expected one value")
    filters: dict[str, Any] = {}
    for name in QUERY_TEXT:
        value = params.get(name, [""])[0]
        if len(value) > MAX_TEXT or FORBIDDEN_TEXT.search(value):
            raise InvalidMessage(name, f"expected at most {MAX_TEXT} characters, no controls")
        if value:
            filters[name] = value
    if params.get("since", [""])[0]:
        filters["since"] = _seconds(params["since"][0], "since")
    limit = params.get("limit", ["100"])[0]
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_QUERY_LIMIT):
        raise InvalidMessage("limit", f"expected an integer from 1 to {MAX_QUERY_LIMIT}")
    filters["limit"] = int(limit)
    return filters


def _seconds(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidMessage(name, "expected a finite number of seconds since the epoch")
    return value


def _messages_json(envelopes: list[MessageEnvelope], *, single: bool = False) -> bytes:
    """Stored messages as JSON; a content no longer encodable becomes a note, not a 500.

    A row cached before the envelope rule existed may nest deeper than orjson encodes.
    """
    wires = [env.to_wire() for env in envelopes]
    payload = wires[0] if single else {"messages": wires}
    try:
        return _json(payload)
    except orjson.JSONEncodeError:
        for wire in wires:
            try:
                orjson.dumps(wire["content"])
            except orjson.JSONEncodeError as exc:
                wire["content"] = {"error": f"stored content cannot be encoded: {exc}"}
        return _json(payload)


def _agent_status(node: Node, agent_id: str) -> dict[str, Any]:
    _handle(node, agent_id)
    return next(a for a in node_status(node)["agents"] if a["agent_id"] == agent_id)


def node_status(node: Node) -> dict[str, Any]:
    """Every agent's figures, never waiting on the relay (a part is null if never known)."""
    down = node.agents_down()
    agents = [
        {**dataclasses.asdict(fig), "down_reason": down.get(fig.agent_id)} for fig in node.figures()
    ]
    return {"node_id": node.node_id, "healthy": node.healthy(), "agents": agents}


def _retry_failed(node: Node) -> bytes:
    """Ask every outbox at once to retry; one down or busy past the timeout is named, not fatal."""
    deadline = time.monotonic() + RETRY_TIMEOUT
    asked = {a: actors.outbox.ask_future(RetryFailed()) for a, actors in node.actors.items()}
    counts: dict[str, int] = {}
    errors: dict[str, str] = {}
    for agent_id, future in asked.items():
        try:
            counts[agent_id] = future.get(timeout=max(0.0, deadline - time.monotonic()))
        except ActorUnavailable as exc:
            errors[agent_id] = str(exc)
    return _json({"retried": counts, "unavailable": errors})


def _healthz(node: Node) -> bytes:
    """200 while the node works (agents down and waiting to revive are named); else 503.

    An agent down is no reason for the watchdog or a balancer to restart the node: the
    other agents work, and the down agent is retried by its own supervisor.
    """
    healthy = node.healthy()
    down = node.agents_down()
    status = ("degraded" if down else "ok") if healthy else "unhealthy"
    body = {"status": status, "node_id": node.node_id, "agents_down": down}
    return _json(body, 200 if healthy else 503)


def _metrics(render: Callable[[], bytes]) -> bytes:
    bottle.response.content_type = "text/plain; version=0.0.4; charset=utf-8"
    return render()
