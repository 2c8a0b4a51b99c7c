"""What opening a message does and shows: it marks it read, and links a report and its
follow-up both ways."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.core.ids import is_id

if TYPE_CHECKING:
    from relay_app.inbox.service import Inbox
    from relay_app.store_inbox import InboxRow


def mark_read(inbox: Inbox, row: InboxRow, user: str) -> InboxRow:
    """Opening an unread message acknowledges it, as the operator (audited like the button).

    The inbox's statuses are unread / acknowledged / archived: "acknowledged" is read.
    It goes through the IngestActor like every other status change.
    """
    if row.status != "unread":
        return row
    inbox.actions.run("acknowledge", [row.msg_id], user)
    return inbox.reader.message(row.msg_id) or row


def links(inbox: Inbox, row: InboxRow) -> dict[str, Any]:
    """The follow-up Execute made of this report, and the report this follow-up answers."""
    origin = None
    content = row.content if isinstance(row.content, dict) else {}
    replied = content.get("in_reply_to")
    if content.get("kind") == "execute" and isinstance(replied, str) and is_id(replied):
        origin = inbox.reader.message(replied)
    requested_at = content.get("requested_at")
    by = content.get("requested_by")
    return {
        "follow_up_id": inbox.reader.executed([row.msg_id]).get(row.msg_id),
        "origin": origin,
        "origin_id": replied if content.get("kind") == "execute" else None,
        "requested_by": by if isinstance(by, str) else None,
        "requested_at": requested_at if isinstance(requested_at, int | float) else None,
    }
