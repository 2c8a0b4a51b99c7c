"""The inbox's reads with the archive merged in: its Archived and All views, and lookups.

Archived rows keep their id and report time, so they take their place in a page under
the same keyset cursors as hot rows. A view's count adds the archive's count within the
same budget (None, "many", when it runs out). Nothing new ever arrives in the archive,
so live updates are the engine's, but for the count and the shown rows still archived.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from relay_app.archive.matching import ArchiveQuery
from relay_app.archive.reader import ArchiveReader, Order
from relay_app.store_inbox import (
    Arrivals,
    AttachedFile,
    AuditRecord,
    InboxPage,
    InboxQuery,
    InboxRow,
    InboxStore,
    ReadBudget,
    ThreadMessage,
)
from relay_app.store_search import IndexChunk

ARCHIVED_VIEWS = ("archived", "all")


def inbox_row(row: dict[str, Any]) -> InboxRow:
    """An archived row as the inbox shows it."""
    return InboxRow(row["id"], row["msg_id"], row["timestamp"], row["agent_id"], row["node_id"],
                    row["task_id"], row["sender"], row["recipient"], row["role"],
                    row["priority"], row["status"], row["received_at"], row["content"])  # fmt: skip


def archive_query(query: InboxQuery) -> ArchiveQuery | None:
    """The archive's side of an inbox view; None for views without archived messages."""
    if query.status not in ARCHIVED_VIEWS:
        return None
    fields = (("role", query.role), ("agent_id", query.agent_id), ("node_id", query.node_id),
              ("priority", query.priority))  # fmt: skip
    equal = tuple((name, (value,)) for name, value in fields if value is not None)
    return ArchiveQuery(equal, query.since, query.until, query.search)


class TieredInbox:
    """`InboxStore` over an engine's inbox and the archive."""

    def __init__(self, hot: InboxStore, reader: ArchiveReader) -> None:
        """Read `hot`, and `reader` for the views that hold archived messages."""
        self.hot = hot
        self.reader = reader

    def page(self, query: InboxQuery, budget: ReadBudget) -> InboxPage:
        """The engine's page, with the archived rows of the view merged in its order."""
        started = time.monotonic()
        hot = self.hot.page(query, budget)
        wanted = archive_query(query)
        if wanted is None:
            return hot
        order = Order(by_time=query.search is None, ascending=query.after is not None)
        cursor = query.after or query.before
        start = None if cursor is None else order.cursor(cursor.timestamp, cursor.id)
        left = budget.rows_s - (time.monotonic() - started)
        rows, more = self.reader.page(wanted, order, budget.rows, start=start, budget_s=left)
        ranked = sorted([(order.key(_key_row(r)), r) for r in hot.rows]
                        + [(order.key(r), inbox_row(r)) for r in rows],
                        key=lambda pair: pair[0], reverse=True)  # fmt: skip
        shown = [row for _, row in ranked[: budget.rows]]
        if query.after is not None:
            shown.reverse()  # read oldest first, listed newest first
        return InboxPage(
            rows=shown,
            more=hot.more or more or len(ranked) > budget.rows,
            total=self._total(hot.total, wanted, budget),
            watermark=hot.watermark,
        )

    def _total(self, hot: int | None, wanted: ArchiveQuery, budget: ReadBudget) -> int | None:
        if hot is None:
            return None
        if not wanted.equal and wanted.since is None and wanted.until is None and not wanted.search:
            found: int | None = self.reader.total()
        else:
            found = self.reader.count(wanted, budget.count_cap, budget.count_s)
        return None if found is None else min(hot + found, budget.count_cap)

    def arrivals(
        self, query: InboxQuery, after_id: int, shown: Sequence[str], budget: ReadBudget
    ) -> Arrivals:
        """The engine's arrivals; the count and the shown rows moved to the archive added."""
        hot = self.hot.arrivals(query, after_id, shown, budget)
        wanted = archive_query(query)
        if wanted is None:
            return hot
        statuses = dict(hot.statuses)
        missing = tuple(m for m in shown if m not in statuses)
        statuses.update((m, "archived") for m in self.reader.located(missing))
        total = self._total(hot.total, wanted, budget)
        capped = total is not None and total >= budget.count_cap
        return Arrivals(hot.rows, hot.watermark, total, capped, hot.unread, statuses)

    def message(self, msg_id: str) -> InboxRow | None:
        """The hot message, else the archived one."""
        found = self.hot.message(msg_id)
        if found is not None:
            return found
        archived = self.reader.lookup(msg_id)
        return None if archived is None else inbox_row(archived[1])

    def status_counts(self) -> dict[str, int]:
        """Messages per status, the archive's counted as archived."""
        counts = dict(self.hot.status_counts())
        counts["archived"] = counts.get("archived", 0) + self.reader.total()
        return counts

    def later_messages(self, msg_id: str, limit: int) -> list[ThreadMessage]:
        """The engine's (a thread's replies are looked for among hot messages)."""
        return self.hot.later_messages(msg_id, limit)

    def audit_trail(self, msg_id: str, limit: int) -> tuple[list[AuditRecord], int]:
        """The engine's audit trail (it outlives the move)."""
        return self.hot.audit_trail(msg_id, limit)

    def attached_files(self, msg_id: str) -> list[AttachedFile]:
        """The engine's file records."""
        return self.hot.attached_files(msg_id)

    def executed(self, msg_ids: Sequence[str]) -> dict[str, str]:
        """The engine's."""
        return self.hot.executed(msg_ids)

    def volume(self, start: float, bucket_s: float, buckets: int, budget_s: float) -> list[int]:
        """The engine's (the charts show recent, hot, traffic)."""
        return self.hot.volume(start, bucket_s, buckets, budget_s)

    def node_volume(
        self, start: float, bucket_s: float, buckets: int, budget_s: float
    ) -> dict[str, list[int]]:
        """The engine's."""
        return self.hot.node_volume(start, bucket_s, buckets, budget_s)

    def unread_count(self) -> int:
        """The engine's (no archived message is unread)."""
        return self.hot.unread_count()

    def facets(self, limit: int) -> dict[str, list[str]]:
        """The engine's."""
        return self.hot.facets(limit)

    def unindexed(self, limit: int) -> IndexChunk | None:
        """The engine's."""
        return self.hot.unindexed(limit)


def _key_row(row: InboxRow) -> dict[str, Any]:
    return {"timestamp": row.timestamp, "id": row.id}
