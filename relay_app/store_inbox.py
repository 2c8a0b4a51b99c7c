"""The inbox's side of the store: its reads (`InboxStore`) and its writes (status moves, audit).

Reads are methods of `MessageStore.inbox`; writes are ops the IngestActor hands to the
`StoreWriter` like any other (`SetStatuses`, `RecordAudit`, and `IndexEntries` of
`relay_app.store_search`). Every value crossing this interface is plain data, so the
inbox runs unchanged on any engine that implements it.

Row positions: every stored message has an integer id, larger for a message stored
later. A watermark (the largest id a read saw) and a `Cursor` are only ever handed back
to the store; an engine with several writers must make a message visible no later than
any message with a larger id, so a live update resuming after a watermark skips none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from relay_app.store_search import IndexChunk, SearchQuery

# InboxQuery.status: "inbox" is every message not archived, "all" every message.
INBOX_VIEWS = ("inbox", "unread", "acknowledged", "archived", "all")
AUDIT_ACTIONS = ("acknowledge", "execute", "archive", "restore", "follow_up")
_CURSOR = re.compile(r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)_(\d{1,19})")
# Row ids are 64-bit integers in every engine: a larger number cannot be bound.
MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Cursor:
    """A keyset position: the (timestamp, id) of a row; pages are strictly before/after it."""

    timestamp: float
    id: int

    def encode(self) -> str:
        """The URL form `<timestamp>_<id>`."""
        return f"{self.timestamp!r}_{self.id}"

    @staticmethod
    def decode(text: str) -> Cursor | None:
        """Parse the URL form; None when malformed."""
        match = _CURSOR.fullmatch(text.strip())
        if match is None:
            return None
        ts, row_id = float(match.group(1)), int(match.group(2))
        return Cursor(ts, row_id) if math.isfinite(ts) and row_id <= MAX_ROW_ID else None


@dataclass(frozen=True, slots=True)
class InboxQuery:
    """Which messages one inbox read selects, and where its page starts.

    Equality filters on the named fields (None: any), report time in [since, until),
    an optional search, and a keyset position: rows strictly `before` it (older) or
    strictly `after` it (newer); neither is the newest page.
    """

    status: str = "inbox"  # one of INBOX_VIEWS
    role: str | None = None
    agent_id: str | None = None
    node_id: str | None = None
    priority: str | None = None
    since: float | None = None
    until: float | None = None
    search: SearchQuery | None = None
    before: Cursor | None = None
    after: Cursor | None = None


@dataclass(frozen=True, slots=True)
class ReadBudget:
    """What one inbox read may cost; the store enforces it.

    At most `rows` rows; reading them may take `rows_s` seconds, past which the read
    raises QueryTooSlow. The count stops at `count_cap` and may take `count_s` seconds,
    past which it is None ("many").
    """

    rows: int
    count_cap: int
    rows_s: float
    count_s: float


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One message as the inbox shows it; `content` decoded (a note when it cannot be)."""

    id: int
    msg_id: str
    timestamp: float
    agent_id: str
    node_id: str
    task_id: str | None
    sender: str | None
    recipient: str | None
    role: str | None
    priority: str
    status: str
    received_at: float
    content: Any

    @property
    def cursor(self) -> Cursor:
        """This row's keyset position."""
        return Cursor(self.timestamp, self.id)


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of rows, newest first, with the view's count as of the same read."""

    rows: list[InboxRow]
    more: bool  # rows lie past the page's far end (older; newer when read `after`)
    total: int | None  # at most the budget's count_cap; None past its time
    watermark: int  # rows with a larger id arrived after this page was read


@dataclass(frozen=True, slots=True)
class Arrivals:
    """What a live update brings: new rows and the figures as of the same read."""

    rows: list[InboxRow]
    watermark: int
    total: int | None  # the view's count, None when over the budget
    capped: bool
    unread: int
    # msg_id -> status, of the `shown` rows still in the view (the others left it)
    statuses: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One action on one message; `detail` names the follow-up or the report."""

    action: str
    user: str
    at: float
    detail: str | None


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """A message stored after a report, which may answer it (`content` decoded, or None)."""

    msg_id: str
    agent_id: str
    sender: str | None
    recipient: str | None
    timestamp: float
    content: Any


@dataclass(frozen=True, slots=True)
class AttachedFile:
    """A file its own agent attached to a message."""

    file_id: str
    filename: str | None
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Audit:
    """Who did an inbox action (one of AUDIT_ACTIONS), and when."""

    action: str
    user: str
    at: float


@dataclass(frozen=True, slots=True)
class SetStatuses:
    """Move messages to `status`, only from one of `from_statuses` (a repeat changes nothing).

    With `audit`, each message that changed gets an audit entry in the same transaction.
    """

    msg_ids: tuple[str, ...]
    status: str
    from_statuses: tuple[str, ...]
    audit: Audit | None = None


@dataclass(frozen=True, slots=True)
class RecordAudit:
    """Add audit entries under `audit`: (msg_id, detail) each; detail names the other
    message of an execute (the follow-up) or of a follow-up (the report)."""

    audit: Audit
    entries: tuple[tuple[str, str | None], ...]


class InboxStore(Protocol):
    """The inbox's reads. Each runs in one read transaction, so its figures match its rows."""

    def page(self, query: InboxQuery, budget: ReadBudget) -> InboxPage:
        """One page of `query`: by report time (search: by id), newest first, keyset-paged."""

    def arrivals(
        self, query: InboxQuery, after_id: int, shown: Sequence[str], budget: ReadBudget
    ) -> Arrivals:
        """Rows of `query` stored after `after_id` (the oldest budget.rows of them, listed
        newest first), the view's count, the unread count and the statuses of the `shown`
        msg_ids the query's filters still admit (search terms aside: content never changes)."""

    def message(self, msg_id: str) -> InboxRow | None:
        """One message by msg_id, or None."""

    def later_messages(self, msg_id: str, limit: int) -> list[ThreadMessage]:
        """Up to `limit` messages stored after `msg_id` that its agent sent or received,
        oldest first ([] when `msg_id` is unknown): where its thread's replies are."""

    def audit_trail(self, msg_id: str, limit: int) -> tuple[list[AuditRecord], int]:
        """The newest `limit` audit entries of a message, newest first, and how many in all."""

    def attached_files(self, msg_id: str) -> list[AttachedFile]:
        """The files of a message stored by its own node and agent, oldest first."""

    def executed(self, msg_ids: Sequence[str]) -> dict[str, str]:
        """report msg_id -> its follow-up's msg_id, for those of `msg_ids` executed."""

    def volume(self, start: float, bucket_s: float, buckets: int, budget_s: float) -> list[int]:
        """Messages per bucket by report time, from `start`; QueryTooSlow past `budget_s`."""

    def node_volume(
        self, start: float, bucket_s: float, buckets: int, budget_s: float
    ) -> dict[str, list[int]]:
        """`volume` per node (nodes with none left out); QueryTooSlow past `budget_s`."""

    def status_counts(self) -> dict[str, int]:
        """Messages per status, exact."""

    def unread_count(self) -> int:
        """The number of unread messages (the badge), exact."""

    def facets(self, limit: int) -> dict[str, list[str]]:
        """Up to `limit` distinct values each of agent_id, node_id and role, in order."""

    def unindexed(self, limit: int) -> IndexChunk | None:
        """The next `limit` messages the full-text index lacks, or None when it has all."""
