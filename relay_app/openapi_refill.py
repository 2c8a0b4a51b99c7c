"""The OpenAPI description of refill's two reads, GET /sync/digests and GET /sync/ids."""

from __future__ import annotations

from relay_app.store_refill import IDS_LIMIT
from runtime.core.api_schemas import Schema, error_responses, id_schema, json_body, parameter
from runtime.core.digest import BUCKET_SECONDS

NODE_AUTH: list[dict[str, list[str]]] = [{"nodeId": [], "nodeToken": []}]
REFUSED = {
    400: "A parameter is malformed; the error names it.",
    401: "Missing or wrong node credentials: one text whatever the reason.",
    403: "The agent is not this node's.",
}
GENERATION = {"type": "string", "pattern": "^[0-9a-f]{16}$",
              "description": "This copy of the corpus: a restore changes it."}  # fmt: skip


def refill_paths() -> dict[str, Schema]:
    """The two paths."""
    return {"/sync/digests": {"get": _digests()}, "/sync/ids": {"get": _ids()}}


def _range(ids: bool) -> list[Schema]:
    number = {"type": "number"}
    bound = f" Required, at most {BUCKET_SECONDS} s after `since`." if ids else ""
    return [
        parameter("agent", "query", id_schema("one of this node's agents", "agent-1"),
                  "Whose messages (those stored from this node).", required=True),
        parameter("since", "query", number, "Report times from this one (seconds).",
                  required=ids),
        parameter("until", "query", number, "Report times before this one." + bound,
                  required=ids),
        *([parameter("after", "query", id_schema("a msg_id", "m-1"),
                     "The `next` of the previous page.")] if ids else []),
    ]  # fmt: skip


def _digests() -> Schema:
    item = {"type": "array", "minItems": 3, "maxItems": 3,
            "description": "[hour number, count, XOR of each msg_id's MD5 prefix (16 hex)]",
            "items": {}}  # fmt: skip
    body = {
        "type": "object",
        "required": ["generation", "bucket_seconds", "digests", "next_since"],
        "properties": {
            "generation": GENERATION,
            "bucket_seconds": {"const": BUCKET_SECONDS},
            "digests": {"type": "array", "items": item},
            "next_since": {"type": ["number", "null"],
                           "description": "Ask again with this `since` for the hours after."},
        },
    }  # fmt: skip
    return {
        "summary": "Digests of an agent's messages by hour: what a node compares to refill.",
        "security": NODE_AUTH,
        "parameters": _range(ids=False),
        "responses": {"200": json_body(body, "The hours that hold messages, in order."),
                      **error_responses(REFUSED)},
    }  # fmt: skip


def _ids() -> Schema:
    body = {
        "type": "object",
        "required": ["ids", "next"],
        "properties": {
            "ids": {"type": "array", "maxItems": IDS_LIMIT, "items": {"type": "string"}},
            "next": {"type": ["string", "null"], "description": "`after` of the next page."},
        },
    }
    return {
        "summary": "The msg_ids of an agent's messages in a time range, in msg_id order.",
        "security": NODE_AUTH,
        "parameters": _range(ids=True),
        "responses": {"200": json_body(body, "One page of ids."), **error_responses(REFUSED)},
    }  # fmt: skip
