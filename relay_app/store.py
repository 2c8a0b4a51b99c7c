"""The relay's storage interface: the only door to the cluster's data.

Writes are requests (`StoreMessages`, `StoreStatus`, `StoreFile`, the inbox's ops in
`relay_app.store_inbox`, `IndexEntries` in `relay_app.store_search`, the session ops in
`relay_app.store_sessions`) that the IngestActor hands to a `StoreWriter` in groups, one
transaction per group. Reads go straight to the `MessageStore` from the HTTP threads: the
node API's here, the inbox's through `MessageStore.inbox`, sessions through
`MessageStore.sessions`. `relay_app.stores.sqlite` implements them all; another database
implements the same protocols and passes the same contract suite
(tests/relay_app/store_contract). Nothing crossing them is an engine's type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from relay_app.store_archive import (
    ArchiveMove,
    ArchiveOp,
    ArchiveRestore,
    ArchiveStore,
    ReclaimSpace,
)
from relay_app.store_inbox import InboxStore, RecordAudit, SetStatuses
from relay_app.store_refill import RefillStore
from relay_app.store_search import IndexEntries
from relay_app.store_sessions import EndSession, ExtendSession, OpenSession, SessionStore, SetFlash

MESSAGE_STATUSES = ("unread", "acknowledged", "archived")
# Query parameter -> message field, for the equality filters of GET /query/messages.
FILTER_FIELDS = {
    "agent": "agent_id",
    "task": "task_id",
    "role": "role",
    "node": "node_id",
    "sender": "sender",
    "recipient": "recipient",
    "priority": "priority",
    "status": "status",
    "msg_id": "msg_id",
}


# What a store answers (400) for a message past the door that one of its table rules
# refuses: nothing of the request is stored, and resending it unchanged cannot succeed.
BROKEN_RULE = "message: refused by a rule of the store; nothing of this request was stored"


class MessageRow(NamedTuple):
    """One validated message, content already gzip-encoded; a tuple so inserts stay cheap."""

    msg_id: str
    timestamp: float
    task_id: str | None
    sender: str | None
    recipient: str | None
    role: str | None
    content: bytes
    node_id: str
    agent_id: str
    priority: str


@dataclass(frozen=True, slots=True)
class StoreMessages:
    """Store messages all or nothing; known msg_ids are not stored again, whatever the batch_id."""

    node_id: str
    rows: tuple[MessageRow, ...]
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """Replace the last health report of one node."""

    node_id: str
    sent_at: float | None
    agents: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A stored file: its metadata row (`path` is relative to the data directory)."""

    file_id: str
    agent_id: str
    node_id: str
    msg_id: str | None
    filename: str | None
    size: int
    sha256: str
    path: str
    received_at: float = 0.0


@dataclass(frozen=True, slots=True)
class StoreFile:
    """Record a file whose content is already on disk."""

    record: FileRecord


WriteOp = (
    StoreMessages
    | StoreStatus
    | StoreFile
    | SetStatuses
    | RecordAudit
    | IndexEntries
    | OpenSession
    | ExtendSession
    | EndSession
    | SetFlash
    | ArchiveOp
)
WRITE_OPS = (
    StoreMessages,
    StoreStatus,
    StoreFile,
    SetStatuses,
    RecordAudit,
    IndexEntries,
    OpenSession,
    ExtendSession,
    EndSession,
    SetFlash,
    ArchiveMove,
    ArchiveRestore,
    ReclaimSpace,
)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one write request changed: rows newly stored, and whether its batch was known."""

    inserted: int = 0
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Filters and paging for GET /query/messages.

    `filters` maps a message field (a value of FILTER_FIELDS) to the accepted values.
    `after_id` is the keyset cursor: rows strictly past it in the chosen order.
    """

    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0
    after_id: int | None = None
    # The cursor row's report time: an archived row is no longer in the hot table to read
    # it from. Cursors made before it was carried leave it None.
    after_ts: float | None = None
    descending: bool = True
    archived: bool = False  # merge archived messages into the page (archived=include)


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One page of messages (wire dicts plus received_at and status) and where it ended.

    Each message's `content` is its stored JSON, unparsed (`orjson.Fragment`).
    """

    messages: list[dict[str, Any]]
    total: int | None  # None: the archive could not be counted in time (archived=include)
    last_id: int | None
    has_more: bool
    ids: list[int] = field(default_factory=list)  # each message's row id, in page order
    last_ts: float | None = None  # the report time of the page's last message


@dataclass(frozen=True, slots=True)
class StoreFigures:
    """What /metrics reads of the store at scrape time."""

    messages_stored: int  # every message the store ever held (ids are never reused)
    database_bytes: int  # the store's size on disk
    # node_id -> when the relay received its last status report
    last_reports: dict[str, float] = field(default_factory=dict)
    archived_messages: int = 0  # messages in archive segments (relay_app.archive)
    archive_bytes: int = 0  # the segments' size on disk
    damaged_segments: tuple[str, ...] = ()  # segments that do not read back as recorded


# Called after new messages commit, with the recipients of the committed rows (those
# without a recipient left out); cheap and non-blocking, from the writer's thread.
StoredListener = Callable[[frozenset[str]], None]


class StoreWriter(Protocol):
    """The single writer; used only by the IngestActor's thread."""

    def write(self, ops: Sequence[WriteOp], received_at: float) -> list[WriteResult]:
        """Apply every op in one transaction; raise StorageFull or StoreUnavailable."""

    def close(self) -> None:
        """Release the writer's connection."""


class MessageStore(Protocol):
    """The cluster store: a writer factory for the IngestActor, and reads for everyone."""

    @property
    def inbox(self) -> InboxStore:
        """The inbox's reads."""

    @property
    def sessions(self) -> SessionStore:
        """The operator sessions' read."""

    @property
    def archive(self) -> ArchiveStore | None:
        """The archive's reads; None on an engine that keeps every message hot."""

    @property
    def refill(self) -> RefillStore:
        """Refill's reads: the generation, digests and ids."""

    def open_writer(self) -> StoreWriter:
        """Open the writer (called in the thread that will use it)."""

    def on_stored(self, listener: StoredListener) -> None:
        """Call `listener` after every commit of new messages, whichever relay wrote them:
        how parked mail polls and the full-text indexer learn of news without polling."""

    def query_messages(self, query: MessageQuery) -> MessagePage:
        """Return one page of messages matching the query, plus the total count.

        Pages run by report time, then id (the inbox's order): newest first unless
        `descending` is False. A cursor names a row and the page starts strictly past it.
        """

    def get_message(self, msg_id: str) -> dict[str, Any] | None:
        """Return one message as a wire dict plus received_at and status, or None.

        `content` is the stored JSON, unparsed (`orjson.Fragment`): a response passes it on.
        """

    def mail_after(
        self, recipients: Sequence[str], after_id: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """Up to `limit` (row id, message) addressed to any of `recipients`, past `after_id`,
        in the order they were stored: a node's long poll for its agents' mail."""

    def node_statuses(self) -> list[dict[str, Any]]:
        """Return the last health report of every node."""

    def get_file(self, file_id: str) -> FileRecord | None:
        """Return a file's metadata, or None."""

    def figures(self) -> StoreFigures:
        """The figures /metrics exports."""

    def close(self) -> None:
        """Release every read connection."""
