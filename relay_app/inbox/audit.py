"""The inbox's audit trail as the detail page shows it: who did what to a message, when.

Written by the actions through the IngestActor (`relay_app.store_inbox.Audit`); read
through `InboxStore.audit_trail`.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay_app.store_inbox import InboxStore

# The detail page shows the newest entries; a message acted on more often says so.
SHOWN = 50
_VERBS = {
    "acknowledge": "Acknowledged",
    "execute": "Executed",
    "archive": "Archived",
    "restore": "Restored",
    "follow_up": "Created by Execute",
}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action on one message."""

    action: str
    user: str
    at: float
    detail: str | None  # the follow-up (of an execute) or the report (of a follow-up)

    @property
    def verb(self) -> str:
        """What was done, as the page says it ("Acknowledged")."""
        return _VERBS.get(self.action, self.action)

    @property
    def detail_label(self) -> str:
        """How the page introduces `detail`."""
        return "open the follow-up" if self.action == "execute" else "open the report"


def trail(store: InboxStore, msg_id: str, limit: int = SHOWN) -> tuple[list[AuditEntry], int]:
    """The newest `limit` entries of a message, newest first, and how many it has in all."""
    records, total = store.audit_trail(msg_id, limit)
    return [AuditEntry(r.action, r.user, r.at, r.detail) for r in records], total
