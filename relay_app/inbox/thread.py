"""A report's thread on its detail page: the follow-ups and replies that name it.

A reply names what it answers in its content (`in_reply_to`, as Execute's follow-up
does), not in an envelope field, so it is found by reading the content of the
messages stored after the report that its agent sent or received: at most REPLY_SCAN
of them, newest last. Replies to a reply join the thread too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay_app.store_inbox import InboxStore

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


def thread_of(store: InboxStore, msg_id: str) -> list[Post]:
    """The posts answering `msg_id` (or one another), in the order they were stored."""
    known, posts = {msg_id}, []
    for m in store.later_messages(msg_id, REPLY_SCAN):
        answered = m.content.get("in_reply_to") if isinstance(m.content, dict) else None
        if isinstance(answered, str) and answered in known:
            known.add(m.msg_id)
            posts.append(
                Post(m.msg_id, m.agent_id, m.sender, m.recipient, m.timestamp, answered, m.content)
            )
    return posts
