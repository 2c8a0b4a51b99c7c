"""A report's thread on its detail page: the follow-ups and replies that name it.

A reply names what it answers in its content (`in_reply_to`, as Execute's follow-up
does), not in an envelope field, so it is found by reading the content of the
messages stored after the report that its agent sent or received: at most REPLY_SCAN
of them, newest last. Replies to a reply join the thread too.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from relay_app.stores.sqlite import content_json

REPLY_SCAN = 200


@dataclass(frozen=True)
class Post:
    """One message of a thread (never the report itself)."""

    msg_id: str
    agent_id: str
    sender: str | None
    recipient: str | None
    timestamp: float
    in_reply_to: str
    content: Any


def thread_of(conn: sqlite3.Connection, msg_id: str) -> list[Post]:
    """The posts answering `msg_id` (or one another), in the order they were stored."""
    root = conn.execute("SELECT id, agent_id FROM messages WHERE msg_id = ?", (msg_id,)).fetchone()
    if root is None:
        return []
    rows = conn.execute(
        "SELECT msg_id, agent_id, sender, recipient, timestamp, content FROM messages"
        " WHERE id > ? AND (agent_id = ? OR recipient = ?) ORDER BY id LIMIT ?",
        (root[0], root[1], root[1], REPLY_SCAN),
    )
    known, posts = {msg_id}, []
    for found, agent_id, sender, recipient, timestamp, blob in rows:
        content = _parsed(blob)
        answered = content.get("in_reply_to") if isinstance(content, dict) else None
        if isinstance(answered, str) and answered in known:
            known.add(found)
            posts.append(Post(found, agent_id, sender, recipient, timestamp, answered, content))
    return posts


def _parsed(blob: Any) -> Any:
    try:
        return orjson.loads(content_json(blob))
    except orjson.JSONDecodeError:
        return None
