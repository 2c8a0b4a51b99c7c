"""JSON Schema pieces both OpenAPI documents share: ids, the message envelope, errors.

Built from the envelope's own constants, so the documents say what the door accepts
and cannot drift from it. The relay's document imports these; nothing here knows
about the relay.
"""

from __future__ import annotations

import re
from typing import Any

from runtime.core.envelope import (
    DEFAULT_PRIORITY,
    FORBIDDEN_TEXT,
    MAX_CONTENT_BYTES,
    MAX_DEPTH,
    MAX_TEXT,
    PRIORITIES,
    REQUIRED_FIELDS,
    TIMESTAMP_MAX,
    TIMESTAMP_MIN,
    TIMESTAMP_RULE,
)
from runtime.core.ids import ID_RULE, ID_SCHEMA_PATTERN, MAX_ID

Schema = dict[str, Any]

EXAMPLE_MSG_ID = "0192f3a4-7b1c-7d2e-8f00-1a2b3c4d5e6f"
EXAMPLE_ENVELOPE: Schema = {
    "msg_id": EXAMPLE_MSG_ID,
    "timestamp": 1764547200.25,
    "agent_id": "recruiter-001",
    "node_id": "Gillsystems-Laptop",
    "task_id": "t1",
    "sender": "recruiter-001",
    "recipient": None,
    "role": "recruiter",
    "priority": "high",
    "content": {"title": "HOT lead"},
}


def allowed_text_pattern(forbidden: re.Pattern[str] = FORBIDDEN_TEXT) -> str:
    """JSON Schema pattern of text free of the characters `forbidden` (one class) matches.

    Written with \\uXXXX escapes that ECMA-262 and Rust's regex both read; the surrogate
    range is left out, as JSON text cannot carry a lone surrogate anyway.
    """
    chars = forbidden.pattern.strip("[]").replace("\ud800-\udfff", "")
    escaped = "".join(c if c == "-" else f"\\u{ord(c):04x}" for c in chars)
    return f"^[^{escaped}]*$"


def id_schema(what: str, example: str = "recruiter-001") -> Schema:
    """An id as every door checks it: matched whole, safe in paths and URLs."""
    return {
        "type": "string",
        "pattern": ID_SCHEMA_PATTERN,
        "minLength": 1,
        "maxLength": MAX_ID,
        "description": f"{what}: {ID_RULE}.",
        "examples": [example],
    }


def text_schema(what: str) -> Schema:
    """An optional short text field of the envelope."""
    return {
        "type": ["string", "null"],
        "maxLength": MAX_TEXT,
        "pattern": allowed_text_pattern(),
        "description": f"{what}: at most {MAX_TEXT} characters, no control characters.",
    }


def envelope_schema() -> Schema:
    """The message envelope on the wire (`MessageEnvelope.to_wire`)."""
    return {
        "type": "object",
        "required": list(REQUIRED_FIELDS),
        "properties": {
            "msg_id": id_schema("msg_id, made by the node (UUIDv7)", EXAMPLE_MSG_ID),
            "timestamp": {
                "type": "number",
                "minimum": TIMESTAMP_MIN,
                "exclusiveMaximum": TIMESTAMP_MAX,
                "description": f"Seconds since the epoch: {TIMESTAMP_RULE}.",
            },
            "agent_id": id_schema("the writing agent"),
            "node_id": id_schema("the node the agent runs on", "Gillsystems-Laptop"),
            "task_id": text_schema("task the message belongs to"),
            "sender": text_schema("sender (defaults to agent_id)"),
            "recipient": text_schema("recipient: an agent id or a role"),
            "role": text_schema("the writing agent's role"),
            "priority": priority_schema(),
            "content": content_schema(),
        },
        "additionalProperties": False,
        "examples": [EXAMPLE_ENVELOPE],
    }


def priority_schema() -> Schema:
    """A priority: one of PRIORITIES, or null for the default."""
    return {
        "type": ["string", "null"],
        "enum": [*PRIORITIES, None],
        "default": DEFAULT_PRIORITY,
        "description": f"null means {DEFAULT_PRIORITY}.",
    }


def content_schema() -> Schema:
    """A message's content: any JSON value within the envelope rule's bounds."""
    return {
        "description": f"Any JSON value: the message itself; arrays and objects nest at most"
        f" {MAX_DEPTH} deep, at most {MAX_CONTENT_BYTES} bytes as compact UTF-8 JSON,"
        " integers within 64 bits.",
    }


def error_schema() -> Schema:
    """`{"error": "..."}`: what every JSON refusal carries, naming the field at fault."""
    return {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "examples": [{"error": "message.msg_id: expected 1-128 characters of letters, ..."}],
    }


def json_body(schema: Schema, description: str, example: Any = None) -> Schema:
    """A response (or request body) object with one application/json schema."""
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"application/json": media}}


MALFORMED = "The request breaks HTTP/1.1 (a control character in a header, say)."


def error_responses(statuses: dict[int, str]) -> dict[str, Schema]:
    """Documented refusals: each status with its meaning and the Error schema."""
    ref = {"$ref": "#/components/schemas/Error"}
    return {str(code): json_body(ref, text) for code, text in statuses.items()}


def with_malformed(paths: dict[str, Schema]) -> dict[str, Schema]:
    """`paths` with a 400 on every operation that names none: the HTTP front answers any
    request whose head breaks HTTP/1.1 before a route sees it."""
    malformed = error_responses({400: MALFORMED})
    return {
        path: {
            method: operation
            if "400" in operation["responses"]
            else {**operation, "responses": {**operation["responses"], **malformed}}
            for method, operation in item.items()
        }
        for path, item in paths.items()
    }


def parameter(name: str, where: str, schema: Schema, description: str, **extra: Any) -> Schema:
    """One OpenAPI parameter object (path parameters are always required)."""
    param: Schema = {"name": name, "in": where, "schema": schema, "description": description}
    if where == "path":
        param["required"] = True
    return {**param, **extra}


def metrics_operation() -> Schema:
    """GET /metrics: the Prometheus text exposition."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "summary": "Prometheus text exposition.",
        "responses": {"200": {"description": "Metrics.", "content": text}},
    }


def document_operation() -> Schema:
    """GET /openapi.json: the document itself."""
    return {
        "summary": "This OpenAPI 3.1 document.",
        "responses": {"200": json_body({"type": "object"}, "The document.")},
    }
