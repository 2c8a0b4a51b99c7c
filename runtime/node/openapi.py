"""The OpenAPI 3.1 document of the node's agent API (`runtime.node.http`), served at /openapi.json.

Tests check it against the Bottle routes both ways and fuzz a running node with it. It
describes the TCP door (runtime.node.doors): an agent's routes need its bearer token,
the node-wide ones answer 403 there (they are served on node.sock only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime.core.api_schemas import (
    EXAMPLE_MSG_ID,
    Schema,
    content_schema,
    document_operation,
    envelope_schema,
    error_responses,
    error_schema,
    id_schema,
    json_body,
    metrics_operation,
    parameter,
    priority_schema,
    text_schema,
    with_malformed,
)

VERSION = "0.1.0"
MESSAGE = {"$ref": "#/components/schemas/Message"}
UNKNOWN_AGENT = {404: "The agent is not configured on this node."}
# Refusals every route may give (runtime.node.doors).
DOOR = {
    403: "Refused at the door: an Origin header or a cross-site Sec-Fetch-Site (agents are"
    " not browsers), a Host that is not loopback (DNS rebinding), another agent's socket,"
    " or a node-wide route asked over TCP (served on node.sock only).",
}
AGENT_DOOR = {
    401: "Over TCP: no, or not this agent's, 'Authorization: Bearer <token>' (one answer).",
    **DOOR,
}
JSON_ONLY = {415: "A request body must be Content-Type: application/json."}
TOKEN: list[dict[str, list[str]]] = [{"agentToken": []}]


def node_document(
    agent_ids: Sequence[str] = (), *, max_body: int | None = None, max_limit: int | None = None
) -> dict[str, Any]:
    """The node's document, naming its agents when given (a fresh copy: callers may change it)."""
    agent = _agent_param(agent_ids)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Commander node: agent API",
            "version": VERSION,
            "description": "The agent API of `commander-node`: agents in other processes "
            "write, read and query their local cache. Writes answer after the local commit. "
            "Served on a Unix socket per agent (`<socket_dir>/<agent_id>.sock`, no token: the "
            "socket's mode decides who connects; node-wide routes on `node.sock`) and on "
            "loopback TCP, where an agent's routes need its bearer token.",
        },
        "servers": [{"url": "http://127.0.0.1:8002", "description": "default --listen"}],
        "paths": with_malformed(
            {
                "/agents/{agent_id}/messages": {
                    "post": _write(agent, max_body),
                    "get": _query(agent, max_limit),
                },
                "/agents/{agent_id}/messages/{msg_id}": {"get": _read(agent)},
                "/agents/{agent_id}/status": {"get": _agent_status(agent)},
                "/agents/{agent_id}/inbox": {"get": _inbox(agent)},
                "/agents/{agent_id}/inbox/ack": {"post": _ack(agent)},
                "/status": {"get": _status()},
                "/outbox/retry-failed": {"post": _retry_failed()},
                "/healthz": {"get": _healthz()},
                "/metrics": {"get": _refused_at_the_door(metrics_operation())},
                "/openapi.json": {"get": _refused_at_the_door(document_operation())},
            }
        ),
        "components": {"schemas": _schemas(), "securitySchemes": _security()},
    }


def _inbox(agent: Schema) -> Schema:
    cursor = {"type": "integer", "minimum": 0}
    mail = {
        "type": "object",
        "required": ["messages", "cursor"],
        "properties": {"messages": {"type": "array", "items": MESSAGE}, "cursor": cursor},
    }
    return {
        "summary": "Receive messages to this agent (recipient = its id or role) from any node.",
        "description": "Acknowledges up to `after`, then answers the agent's mail past what it "
        "acknowledged, oldest first, waiting up to `wait` seconds for some. At-least-once: "
        "drop repeats by msg_id. Pass the answer's `cursor` as the next `after`.",
        "security": TOKEN,
        "parameters": [
            agent,
            parameter("after", "query", {**cursor, "maximum": 2**62}, "Cursor to acknowledge."),
            parameter("wait", "query", {"type": "number", "minimum": 0, "maximum": 60},
                      "Seconds to wait for mail when there is none."),
            parameter("limit", "query", {"type": "integer", "minimum": 0, "maximum": 1000},
                      "At most this many messages."),
        ],
        "responses": {
            "200": json_body(mail, "New mail (empty when the wait ran out)."),
            **error_responses({400: "A parameter is malformed; the error names it.",
                               **UNKNOWN_AGENT, **AGENT_DOOR, **JSON_ONLY}),
        },
    }  # fmt: skip


def _ack(agent: Schema) -> Schema:
    cursor = {"type": "integer", "minimum": 0, "maximum": 2**62}
    body = {"type": "object", "required": ["cursor"], "properties": {"cursor": cursor}}
    return {
        "summary": "Acknowledge this agent's mail up to a cursor without asking for more.",
        "security": TOKEN,
        "parameters": [agent],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": json_body(body, "The cursor now kept."),
            **error_responses({400: "The body is not {\"cursor\": N}.",
                               **UNKNOWN_AGENT, **AGENT_DOOR, **JSON_ONLY}),
        },
    }  # fmt: skip


def _security() -> dict[str, Schema]:
    about = "The agent's token (`commander-node agent-token AGENT_ID`), needed over TCP only."
    return {"agentToken": {"type": "http", "scheme": "bearer", "description": about}}


def _refused_at_the_door(operation: Schema) -> Schema:
    """A shared operation (metrics, this document) with the node's door refusals added."""
    refusals = error_responses({**DOOR, **JSON_ONLY})
    return {**operation, "responses": {**operation["responses"], **refusals}}


def _agent_param(agent_ids: Sequence[str]) -> Schema:
    schema = id_schema("an agent configured on this node")
    if agent_ids:
        schema["enum"] = list(agent_ids)
    return parameter("agent_id", "path", schema, "Agent.")


def _schemas() -> dict[str, Schema]:
    figures = {"type": ["object", "null"], "additionalProperties": True}
    agent = {
        "type": "object",
        "required": ["agent_id"],
        "properties": {
            "agent_id": {"type": "string"},
            "cache": {**figures, "description": "Cache figures; null while its actor restarts."},
            "outbox": {**figures, "description": "Outbox figures; null while it restarts."},
            "sync": figures,
            "refill": {
                "type": "object",
                "additionalProperties": True,
                "description": "Refill: comparisons with the relay, messages sent again"
                " (refilled) and those the relay lacks that this node no longer holds.",
            },
        },
    }
    return {"Message": envelope_schema(), "Error": error_schema(), "AgentFigures": agent}


def _write_body() -> Schema:
    return {
        "type": "object",
        "required": ["content"],
        "properties": {
            "content": content_schema(),
            "msg_id": {
                "anyOf": [id_schema("msg_id"), {"type": "null"}],
                "description": "Bring your own to make a retry idempotent; null: the node's.",
            },
            "task_id": text_schema("task"),
            "recipient": text_schema("recipient: an agent id or a role"),
            "sender": text_schema("sender (defaults to the agent)"),
            "priority": priority_schema(),
        },
        "additionalProperties": False,
    }


def _write(agent: Schema, max_body: int | None) -> Schema:
    stored = {
        "type": "object",
        "required": ["status", "msg_id"],
        "properties": {"status": {"const": "stored"}, "msg_id": {"type": "string"}},
    }
    return {
        "summary": "Write a message as this agent (answers after the local commit).",
        "parameters": [agent],
        "security": TOKEN,
        "requestBody": {
            "required": True,
            **json_body(_write_body(), "The message.", {"content": {"title": "HOT lead"}}),
        },
        "responses": {
            "201": json_body(stored, "Committed locally.", {"status": "stored",
                                                           "msg_id": EXAMPLE_MSG_ID}),
            **error_responses({
                400: "The body or a field breaks the envelope rule (or names another agent as"
                     " sender); the error names it.",
                **AGENT_DOOR,
                **UNKNOWN_AGENT,
                **JSON_ONLY,
                413: f"The body is over the node's limit{_bytes(max_body)}.",
                503: "The agent's cache actor is restarting; retry.",
                507: "The agent's cache is full of unsynced messages.",
            }),
        },
    }  # fmt: skip


def _bytes(limit: int | None) -> str:
    return f" of {limit} bytes" if limit else ""


def _read(agent: Schema) -> Schema:
    msg_id = parameter("msg_id", "path", {"type": "string"}, "The message's msg_id.")
    return {
        "summary": "Read one message: the local cache first, then the relay.",
        "parameters": [agent, msg_id],
        "security": TOKEN,
        "responses": {
            "200": json_body(MESSAGE, "The message."),
            **error_responses({400: "The msg_id is not an id.", **AGENT_DOOR,
                               404: "No such message, or the agent is unknown.", **JSON_ONLY}),
        },
    }  # fmt: skip


def _query(agent: Schema, max_limit: int | None) -> Schema:
    params = [
        agent,
        *(parameter(n, "query", {"type": "string"}, f"Only messages with this {n}.")
          for n in ("task_id", "sender", "recipient")),
        parameter("since", "query", {"type": "number"},
                  "Only messages at or after this time (empty: no filter).", allowEmptyValue=True),
        parameter("limit", "query", {"type": "integer", "minimum": 1,
                                     **({"maximum": max_limit} if max_limit else {})},
                  "At most this many (default 100)."),
    ]  # fmt: skip
    listing = {
        "type": "object",
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": MESSAGE}},
    }
    return {
        "summary": "Query this agent's local messages, oldest first.",
        "parameters": params,
        "security": TOKEN,
        "responses": {
            "200": json_body(listing, "The matching messages."),
            **error_responses({400: "since is not a number or limit not an integer.",
                               **AGENT_DOOR, **UNKNOWN_AGENT, **JSON_ONLY}),
        },
    }  # fmt: skip


def _agent_status(agent: Schema) -> Schema:
    return {
        "summary": "This agent's cache and outbox figures.",
        "parameters": [agent],
        "security": TOKEN,
        "responses": {
            "200": json_body({"$ref": "#/components/schemas/AgentFigures"}, "Figures."),
            **error_responses({**AGENT_DOOR, **UNKNOWN_AGENT, **JSON_ONLY}),
        },
    }


def _status() -> Schema:
    status = {
        "type": "object",
        "required": ["node_id", "healthy", "agents"],
        "properties": {
            "node_id": {"type": "string"},
            "healthy": {"type": "boolean"},
            "agents": {"type": "array", "items": {"$ref": "#/components/schemas/AgentFigures"}},
        },
    }
    return {
        "summary": "Every agent's figures (on node.sock; 403 over TCP).",
        "responses": {"200": json_body(status, "OK"), **error_responses({**DOOR, **JSON_ONLY})},
    }


def _retry_failed() -> Schema:
    retried = {
        "type": "object",
        "required": ["retried"],
        "properties": {
            "retried": {"type": "object", "additionalProperties": {"type": "integer"}},
            "unavailable": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    return {
        "summary": "Move batches the relay rejected back to pending, for every agent"
        " (on node.sock; 403 over TCP).",
        "responses": {
            "200": json_body(retried, "Batches moved back, per agent."),
            **error_responses({**DOOR, **JSON_ONLY}),
        },
    }


def _healthz() -> Schema:
    health = {
        "type": "object",
        "required": ["status", "node_id"],
        "properties": {
            "status": {"enum": ["ok", "degraded", "unhealthy"]},
            "node_id": {"type": "string"},
            "agents_down": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Agents whose actors are down and waiting to revive, why.",
            },
        },
    }
    return {
        "summary": "200 while the node works (agents down are named), else 503.",
        "responses": {
            "200": json_body(health, "Healthy."),
            "503": json_body(health, "An actor is down."),
            **error_responses({**DOOR, **JSON_ONLY}),
        },
    }
