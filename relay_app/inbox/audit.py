"""The inbox's audit trail as the detail page shows it: who did what to a message, when.

Written by the actions through the IngestActor (`relay_app.store.Audit`, table
`inbox_audit`); read here from the inbox's read connections.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

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


def trail(
    conn: sqlite3.Connection, msg_id: str, limit: int = SHOWN
) -> tuple[list[AuditEntry], int]:
    """The newest `limit` entries of a message, newest first, and how many it has in all."""
    rows = conn.execute(
        "SELECT action, user_name, at, detail FROM inbox_audit WHERE msg_id = ?"
        " ORDER BY id DESC LIMIT ?",
        (msg_id, limit),
    ).fetchall()
    total = len(rows)
    if total == limit:
        found = conn.execute("SELECT COUNT(*) FROM inbox_audit WHERE msg_id = ?", (msg_id,))
        total = int(found.fetchone()[0])
    return [AuditEntry(str(a), str(u), float(t), d) for a, u, t, d in rows], total
