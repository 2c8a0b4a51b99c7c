"""The OpenAPI 3.1 document of the relay's node API, served at /openapi.json.

The operator's inbox (`/messages`, `/api/unread_count`) is described beside it in
`relay_app.openapi_inbox`. Limits come from the relay's settings and the envelope's
constants, so the document says what this relay accepts. Tests check it against the
Bottle routes both ways and fuzz a running relay with it.
"""

from __future__ import annotations

from typing import Any

from relay_app.files import FIELDS, MAX_FILENAME_CHARS
from relay_app.mail import MAX_MAIL, MAX_RECIPIENT_CHARS, MAX_RECIPIENTS, MAX_WAIT
from relay_app.openapi_inbox import INBOX_SCHEMES, inbox_paths
from relay_app.openapi_refill import GENERATION, refill_paths
from relay_app.store import FILTER_FIELDS, MESSAGE_STATUSES
from relay_app.validate import MAX_FILTER_VALUES, MAX_LIMIT, MAX_PARAM_CHARS, MAX_STATUS_AGENTS
from runtime.core.api_schemas import (
    EXAMPLE_MSG_ID,
    Schema,
    document_operation,
    envelope_schema,
    error_responses,
    error_schema,
    id_schema,
    json_body,
    metrics_operation,
    parameter,
    with_malformed,
)
from runtime.core.config import RelaySettings

VERSION = "0.1.0"
NODE_AUTH: list[dict[str, list[str]]] = [{"nodeId": [], "nodeToken": []}]
UNAUTHORIZED = {401: "Missing or wrong node credentials: one text whatever the reason."}
WRITE_REFUSALS = {
    **UNAUTHORIZED,
    403: "The body names another node than the authenticated one, or an agent that the "
    "relay's topology (agents/<agent_id>.yaml) does not give the authenticated node, "
    "or a message whose sender is not its agent_id.",
    413: "The body is over relay.max_body_bytes (or too many messages).",
    415: "Content-Encoding other than gzip.",
    503: "The relay's writer is stopped; retry.",
    507: "The relay's disk or database is full; nothing was stored; retry.",
}
# Only messages carry an id the sender may choose.
ID_CONFLICT = {409: "A msg_id the relay already holds for another agent (nothing was stored)."}


def relay_document(settings: RelaySettings) -> dict[str, Any]:
    """The relay's document for these settings (a fresh copy: callers may change it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Commander relay",
            "version": VERSION,
            "description": "Nodes push messages, files and status reports; nodes and "
            "operators' tools read the cluster's corpus. Every JSON refusal is "
            '`{"error": "..."}` naming the field at fault.',
        },
        "servers": [{"url": "http://127.0.0.1:8001", "description": "make run"}],
        "paths": with_malformed({**_node_paths(settings), **inbox_paths()}),
        "components": {"schemas": _schemas(settings), "securitySchemes": _schemes()},
    }


def _schemes() -> dict[str, Schema]:
    node_id = "The node's id; the token must be that node's."
    return {
        "nodeId": {"type": "apiKey", "in": "header", "name": "X-Commander-Node",
                   "description": node_id},
        "nodeToken": {"type": "http", "scheme": "bearer",
                      "description": "The node's secret (`commander-relay add-node`)."},
        **INBOX_SCHEMES,
    }  # fmt: skip


def _node_paths(settings: RelaySettings) -> dict[str, Schema]:
    return {
        "/sync/message": {"post": _sync_message()},
        "/sync/messages": {"post": _sync_messages(settings)},
        "/sync/status": {"post": _sync_status()},
        "/sync/files": {"post": _sync_files(settings)},
        "/query/messages": {"get": _query_messages()},
        "/query/messages/{msg_id}": {"get": _get_message()},
        "/query/status": {"get": _query_status()},
        "/sync/mail": {"get": _sync_mail()},
        **refill_paths(),
        "/files/{file_id}": {"get": _get_file()},
        "/healthz": {"get": _healthz()},
        "/metrics": {"get": _metrics()},
        "/openapi.json": {"get": document_operation()},
    }


def _schemas(settings: RelaySettings) -> dict[str, Schema]:
    stored = envelope_schema()
    stored = {
        **stored,
        "required": [*stored["required"], "received_at", "status"],
        "properties": {
            **stored["properties"],
            "received_at": {"type": "number"},
            "status": {"enum": list(MESSAGE_STATUSES)},
        },
        "examples": [],
    }
    return {
        "Message": envelope_schema(),
        "StoredMessage": stored,
        "Batch": _batch_schema(settings),
        "Error": error_schema(),
    }


def _batch_schema(settings: RelaySettings) -> Schema:
    return {
        "type": "object",
        "required": ["batch_id", "node_id", "messages"],
        "properties": {
            "batch_id": id_schema("the batch, chosen by the node", "b-0001"),
            "node_id": id_schema("the sending node", "Gillsystems-Laptop"),
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": settings.max_batch_messages,
                "items": {"$ref": "#/components/schemas/Message"},
            },
        },
    }


def _write(summary: str, body: Schema, ok: Schema, refusals: dict[int, str]) -> Schema:
    return {
        "summary": summary,
        "security": NODE_AUTH,
        "requestBody": {"required": True, **body},
        "responses": {"200": ok, **error_responses(refusals)},
    }


def _ack(status: str, key: str, example: str) -> Schema:
    schema = {
        "type": "object",
        "required": ["status", key],
        "properties": {"status": {"const": status}, key: {"type": "string"}},
    }
    return json_body(schema, "Committed.", {"status": status, key: example})


def _sync_message() -> Schema:
    return _write(
        "Store one message (answered after the commit; a repeat is acknowledged again).",
        json_body({"$ref": "#/components/schemas/Message"}, "The message."),
        _ack("stored", "msg_id", EXAMPLE_MSG_ID),
        {
            400: "A field breaks the envelope rule; the error names it.",
            **WRITE_REFUSALS,
            **ID_CONFLICT,
        },
    )


def _sync_messages(settings: RelaySettings) -> Schema:
    return _write(
        f"Store a batch of 1-{settings.max_batch_messages} messages, all or none; "
        "gzip Content-Encoding accepted.",
        json_body({"$ref": "#/components/schemas/Batch"}, "The batch."),
        _ack("acked", "batch_id", "b-0001"),
        {
            400: "A field breaks the envelope rule; the error names it.",
            **WRITE_REFUSALS,
            **ID_CONFLICT,
        },
    )


def _sync_status() -> Schema:
    number = {"type": ["number", "null"]}
    agent = {
        "type": "object",
        "required": ["agent_id"],
        "properties": {"agent_id": id_schema("agent")},
        "additionalProperties": {"type": ["number", "string", "boolean", "null"]},
    }
    report = {
        "type": "object",
        "required": ["node_id"],
        "properties": {
            "node_id": id_schema("the reporting node", "Gillsystems-Laptop"),
            "sent_at": number,
            "agents": {"type": "array", "maxItems": MAX_STATUS_AGENTS, "items": agent},
        },
    }
    return _write(
        "Store the node's health report (the last one per node is kept).",
        json_body(report, "The report."),
        _ack("stored", "node_id", "Gillsystems-Laptop"),
        {400: "A field is malformed; the error names it.", **WRITE_REFUSALS},
    )


def _sync_files(settings: RelaySettings) -> Schema:
    form = {
        "type": "object",
        "required": ["file", "agent_id"],
        "properties": {
            "file": {"type": "string", "contentMediaType": "application/octet-stream",
                     "description": f"At most {settings.max_file_bytes} bytes; a plain file "
                     f"name of at most {MAX_FILENAME_CHARS} characters."},
            **{name: id_schema(name) for name in FIELDS},
        },
    }  # fmt: skip
    stored = {
        "type": "object",
        "required": ["status", "file_id", "sha256", "size"],
        "properties": {
            "status": {"const": "stored"},
            "file_id": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer", "minimum": 0},
        },
    }
    body = {"description": "The file.", "content": {"multipart/form-data": {"schema": form}}}
    refusals = {400: "The form is malformed; the error names the part.",
                411: "No Content-Length.", **WRITE_REFUSALS}  # fmt: skip
    return _write("Upload a file attached to a message.", body, json_body(stored, "Stored."),
                  refusals)  # fmt: skip


def _query_messages() -> Schema:
    value = {"type": "string", "minLength": 1, "maxLength": MAX_PARAM_CHARS}
    many = {"type": "array", "items": value, "maxItems": MAX_FILTER_VALUES}
    filters = [
        parameter(name, "query", many, f"Only messages whose {column} is one of these.",
                  style="form", explode=True)
        for name, column in FILTER_FIELDS.items()
    ]  # fmt: skip
    page = {
        "type": "object",
        "required": ["messages", "total", "page", "next"],
        "properties": {
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/StoredMessage"}},
            "total": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "null: with archived=include, the archive took too long to count.",
            },
            "page": {"type": "integer", "minimum": 1},
            "next": {"type": ["string", "null"], "description": "Cursor of the next page."},
        },
    }
    return {
        "summary": "Page through the cluster's messages, newest first by default.",
        "security": NODE_AUTH,
        "parameters": [*filters, *_paging()],
        "responses": {
            "200": json_body(page, "One page."),
            **error_responses({400: "A parameter is malformed; the error names it.",
                               **UNAUTHORIZED}),
        },
    }  # fmt: skip


def _paging() -> list[Schema]:
    number = {"type": "number"}
    positive = {"type": "integer", "minimum": 1}
    return [
        parameter("since", "query", number, "Only messages at or after this timestamp."),
        parameter("until", "query", number, "Only messages before this timestamp."),
        parameter("limit", "query", positive, f"Page size (capped at {MAX_LIMIT})."),
        parameter("page", "query", positive, "Page number (offset paging)."),
        parameter(
            "order",
            "query",
            {"enum": ["asc", "desc"]},
            "By report time, then arrival; default desc.",
        ),
        parameter("next", "query", {"type": "string"}, "Cursor from the previous page."),
        parameter(
            "archived",
            "query",
            {"enum": ["exclude", "include"]},
            "include: archived messages too, merged in order (pages by `next` only).",
        ),
    ]


def _by_id(summary: str, name: str, ok: Schema, missing: str) -> Schema:
    return {
        "summary": summary,
        "security": NODE_AUTH,
        "parameters": [parameter(name, "path", {"type": "string"}, f"The {name}.")],
        "responses": {
            "200": ok,
            **error_responses({400: f"The {name} is not an id.", **UNAUTHORIZED,
                               404: missing}),
        },
    }  # fmt: skip


def _get_message() -> Schema:
    ok = json_body({"$ref": "#/components/schemas/StoredMessage"}, "The message.")
    return _by_id("One message by msg_id.", "msg_id", ok, "No message with that msg_id.")


def _get_file() -> Schema:
    binary = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
    ok = {"description": "The file's bytes.", "content": {"application/octet-stream": binary}}
    return _by_id("Download a file by file_id.", "file_id", ok, "No such file.")


def _query_status() -> Schema:
    report = {
        "type": "object",
        "required": ["node_id", "sent_at", "received_at", "agents"],
        "properties": {
            "node_id": {"type": "string"},
            "sent_at": {"type": ["number", "null"]},
            "received_at": {"type": "number"},
            "agents": {"type": "array", "items": {"type": "object"}},
        },
    }
    nodes = {"type": "object", "required": ["nodes"],
             "properties": {"nodes": {"type": "array", "items": report}}}  # fmt: skip
    return {
        "summary": "Every node's last health report.",
        "security": NODE_AUTH,
        "responses": {"200": json_body(nodes, "Reports."), **error_responses(UNAUTHORIZED)},
    }


def _sync_mail() -> Schema:
    recipient = {"type": "string", "minLength": 1, "maxLength": MAX_RECIPIENT_CHARS}
    mail = {
        "type": "object",
        "required": ["messages", "cursor"],
        "properties": {
            "messages": {"type": "array", "items": {"$ref": "#/components/schemas/StoredMessage"}},
            "cursor": {"type": "integer", "minimum": 0, "description": "`after` of the next poll."},
        },
    }
    return {
        "summary": "Long poll for the mail of this node's agents (recipient = agent or role).",
        "security": NODE_AUTH,
        "parameters": [
            parameter("for", "query", {"type": "array", "items": recipient,
                      "maxItems": MAX_RECIPIENTS}, "The node's agents and their roles.",
                      required=True, style="form", explode=True),
            parameter("after", "query", {"type": "integer", "minimum": 0},
                      "The cursor of the last answer; 0 for everything."),
            parameter("wait", "query", {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
                      "Seconds to wait for new mail when there is none."),
            parameter("limit", "query", {"type": "integer", "minimum": 0, "maximum": MAX_MAIL},
                      "At most this many messages."),
        ],
        "responses": {
            "200": json_body(mail, "New mail, oldest first (empty when the wait ran out)."),
            **error_responses({400: "A parameter is malformed; the error names it.",
                               403: "A recipient is not this node's agent or role.",
                               **UNAUTHORIZED}),
        },
    }  # fmt: skip


def _metrics() -> Schema:
    operation = metrics_operation()
    refused = "relay.metrics_token_sha256 is set and the request does not carry that token."
    return {
        **operation,
        "description": "Open unless relay.metrics_token_sha256 is set; then it needs "
        "`Authorization: Bearer <token>`, or basic auth whose password is the token "
        "(`commander-relay metrics-token`).",
        "responses": {**operation["responses"], **error_responses({401: refused})},
    }


def _healthz() -> Schema:
    # To a caller without a node token or the metrics token, only `status`.
    health = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["ok", "refusing"]},
            "writes_accepted": {"type": "boolean"},
            "refusing": {"enum": [None, "writer_stopped", "database_full", "disk_floor"]},
            "free_bytes": {"type": "integer"},
            "min_free_bytes": {"type": "integer"},
            "database_full": {"type": "boolean"},
            "archive_damaged_segments": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "description": "Archive segments that do not read back as recorded.",
            },
            "generation": {**GENERATION, "type": ["string", "null"]},
            "instance": {"type": "string", "description": "This relay process: new at start."},
            "time": {"type": "number"},
        },
    }
    return {
        "summary": "Liveness, and whether writes are accepted.",
        "description": "Strangers get `status` only; a node token or the metrics token "
        "also gets why writes are refused, the free disk and the floor.",
        "responses": {
            "200": json_body(health, "The relay answers and accepts writes."),
            "503": json_body(
                health, "The relay answers but refuses writes (disk, database, writer stopped)."
            ),
        },
    }
