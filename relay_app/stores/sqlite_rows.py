"""Rows of the cluster database turned into the plain values the protocols return."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from relay_app.store_inbox import InboxRow
from runtime.core.envelope import decode_content, decode_json

MESSAGE_COLUMNS = (
    "id, msg_id, timestamp, agent_id, node_id, task_id, sender, recipient, role, priority,"
    " content, received_at, status"
)
CONTENT_INDEX = 10  # of `content` in MESSAGE_COLUMNS
FILE_COLUMNS = "file_id, agent_id, node_id, msg_id, filename, size, sha256, path, received_at"
# Content bytes in one page of GET /query/messages past which the page is cut (1000
# messages of up to 1 MiB each would otherwise be a 1 GiB response held in memory; a
# page costs about four times its size while it is encoded and sent).
MAX_PAGE_BYTES = 4 * 1024 * 1024
# The inbox's columns, content last (`inbox_row`).
INBOX_COLUMNS = (
    "m.id, m.msg_id, m.timestamp, m.agent_id, m.node_id, m.task_id, m.sender, m.recipient,"
    " m.role, m.priority, m.status, m.received_at, m.content"
)


def content_json(blob: Any) -> bytes:
    """The stored JSON of a row's content, for a response to pass through unparsed.

    Passing the bytes through keeps any nesting a row holds (an older version stored
    deeper content than orjson can encode) from breaking the response, and saves the
    CPU of a parse and a dump. A blob that cannot be inflated becomes a JSON note.
    """
    try:
        raw = decode_json(blob)
    except Exception as exc:  # whatever an old row holds, the read still answers
        return orjson.dumps({"error": f"content cannot be decoded: {exc}"})
    return raw if raw.strip() else b"null"


def parsed_content(blob: Any) -> Any:
    """A row's content parsed, or None when its stored JSON does not parse."""
    try:
        return orjson.loads(content_json(blob))
    except orjson.JSONDecodeError:
        return None


def message_dict(row: Sequence[Any], raw: bytes | None = None) -> dict[str, Any]:
    """Turn a row of MESSAGE_COLUMNS into the wire dict plus received_at and status.

    `content` is an orjson.Fragment of the stored JSON (`raw`, when already read).
    """
    (_, msg_id, ts, agent_id, node_id, task_id, sender, recipient, role, priority, content,
     received_at, status) = row  # fmt: skip
    return {
        "msg_id": msg_id,
        "timestamp": ts,
        "agent_id": agent_id,
        "node_id": node_id,
        "task_id": task_id,
        "sender": sender,
        "recipient": recipient,
        "role": role,
        "priority": priority,
        "content": orjson.Fragment(content_json(content) if raw is None else raw),
        "received_at": received_at,
        "status": status,
    }


def inbox_row(raw: Sequence[Any]) -> InboxRow:
    """Turn a row of INBOX_COLUMNS into an InboxRow, its content decoded."""
    blob = raw[-1]
    try:
        content = decode_content(blob)
    except Exception as exc:  # a bad blob must not take the page down
        content = {"error": f"content cannot be decoded: {exc}"}
    (row_id, msg_id, ts, agent_id, node_id, task_id, sender, recipient, role, priority, status,
     received_at) = raw[:-1]  # fmt: skip
    return InboxRow(row_id, msg_id, ts, agent_id, node_id, task_id, sender, recipient, role,
                    priority, status, received_at, content)  # fmt: skip


def agents(stored: Any) -> list[dict[str, Any]]:
    """A report's agents as stored; what no version should have stored reads as none."""
    try:
        found = orjson.loads(stored)
    except (orjson.JSONDecodeError, TypeError):
        return []
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []


def bounded_page(
    rows: Iterable[Sequence[Any]], limit: int
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """Up to `limit` (row id, message), cut once their content passes MAX_PAGE_BYTES.

    A page holds at least one message; a cut page says there is more, and its `next`
    cursor resumes after its last row. Rows are read one by one, so a cut page never
    holds the rest of the limit in memory.
    """
    page: list[tuple[int, dict[str, Any]]] = []
    size = 0
    for row in rows:
        if len(page) == limit or size > MAX_PAGE_BYTES:
            return page, True
        raw = content_json(row[CONTENT_INDEX])
        size += len(raw)
        page.append((row[0], message_dict(row, raw)))
    return page, False
