"""The inbox's reads: a view of the URL becomes a store query under a time budget.

Every read goes through `relay_app.store_inbox.InboxStore`; this module decides what a
view means (its time range as of now, its search), what each read may cost, and how a
page links to its neighbours. A view past its budget reads as "too slow" (QueryTooSlow)
and its count as "many".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from relay_app.errors import QueryTooSlow
from relay_app.inbox import activity
from relay_app.inbox.audit import AuditEntry, trail
from relay_app.inbox.filters import PAGE_SIZE, InboxView
from relay_app.inbox.search import parse_search
from relay_app.inbox.thread import Post, thread_of
from relay_app.store_inbox import (
    Arrivals,
    AttachedFile,
    Cursor,
    InboxQuery,
    InboxRow,
    InboxStore,
    ReadBudget,
)
from relay_app.store_search import SearchQuery

COUNT_CAP = 1000
COUNT_BUDGET_S = 0.015
QUERY_BUDGET_S = 2.0
LIVE_LIMIT = 50
FACET_TTL_S = 10.0
FACET_LIMIT = 500
CHART_BUDGET_S = 0.05


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the inbox and how to reach its neighbours."""

    rows: list[InboxRow]
    total: int | None  # None: more than could be counted within the budget
    capped: bool
    newer: Cursor | None
    older: Cursor | None
    watermark: int  # rows with a larger id arrived after this page was read
    search: SearchQuery | None


class InboxReader:
    """The inbox's reads of the store."""

    def __init__(self, store: InboxStore, clock: Callable[[], float] = time.time) -> None:
        """Read `store`; `clock` says when "now" is for the time presets."""
        self._store = store
        self._clock = clock
        self._facets: tuple[float, dict[str, list[str]]] | None = None

    def page(self, view: InboxView, limit: int = PAGE_SIZE) -> Page:
        """The page of `view`: newest report first, keyset-paged."""
        query = self.query(view)
        found = self._store.page(query, _budget(limit))
        newer, older = _neighbours(view, found.rows, found.more)
        capped = found.total == COUNT_CAP
        return Page(found.rows, found.total, capped, newer, older, found.watermark, query.search)

    def arrived_since(self, view: InboxView, after_id: int, shown: Sequence[str] = ()) -> Arrivals:
        """Rows of `view` stored after `after_id` (newest first), with the view's count and
        the unread count read in the same transaction, so the page's figures match its rows.

        At most LIVE_LIMIT rows, the oldest first: the watermark then stops at the last
        row sent, and the next poll continues from there (none is skipped). `shown` are
        the msg_ids the page lists: those still in the view, with their statuses now, so
        rows acted on elsewhere (or past a time range) change or leave with the count.
        """
        query = self.query(view)
        return self._store.arrivals(query, after_id, shown, _budget(LIVE_LIMIT))

    def query(self, view: InboxView) -> InboxQuery:
        """What `view` selects, its time range as of now."""
        since, until = view.since_until(self._clock())
        return InboxQuery(
            status=view.status,
            role=view.role,
            agent_id=view.agent,
            node_id=view.node,
            priority=view.priority,
            since=since,
            until=until,
            search=parse_search(view.q) if view.q else None,
            before=view.before,
            after=view.after,
        )

    def message(self, msg_id: str) -> InboxRow | None:
        """One message by msg_id, or None."""
        return self._store.message(msg_id)

    def thread(self, msg_id: str) -> list[Post]:
        """The follow-ups and replies answering a message (relay_app.inbox.thread)."""
        return thread_of(self._store, msg_id)

    def audit_of(self, msg_id: str) -> tuple[list[AuditEntry], int]:
        """A message's audit trail, newest first (at most audit.SHOWN), and its length."""
        return trail(self._store, msg_id)

    def files_of(self, msg_id: str) -> list[AttachedFile]:
        """The files its own agent attached to a message."""
        return self._store.attached_files(msg_id)

    def executed(self, msg_ids: Sequence[str]) -> dict[str, str]:
        """report msg_id -> follow-up msg_id, for those of `msg_ids` that were executed."""
        return self._store.executed(msg_ids)

    def volume(self) -> activity.Series | None:
        """Messages per hour over the last day; None past a short budget."""
        try:
            return activity.volume(self._store, self._clock(), CHART_BUDGET_S)
        except QueryTooSlow:
            return None  # the charts are a nicety, the page is not

    def throughput(self) -> dict[str, activity.Series]:
        """Each node's messages per 5 minutes over the last hour; {} past a short budget."""
        try:
            return activity.throughput(self._store, self._clock(), CHART_BUDGET_S)
        except QueryTooSlow:
            return {}

    def counts(self) -> dict[str, int]:
        """Messages per status (exact)."""
        return self._store.status_counts()

    def unread_count(self) -> int:
        """The number of unread messages."""
        return self._store.unread_count()

    def facets(self) -> dict[str, list[str]]:
        """The distinct agents, nodes and roles (cached briefly)."""
        now = time.monotonic()
        if self._facets is not None and now - self._facets[0] < FACET_TTL_S:
            return self._facets[1]
        found = self._store.facets(FACET_LIMIT)
        self._facets = (now, found)
        return found


def _budget(rows: int) -> ReadBudget:
    return ReadBudget(rows, COUNT_CAP, QUERY_BUDGET_S, COUNT_BUDGET_S)


def _neighbours(
    view: InboxView, rows: list[InboxRow], more: bool
) -> tuple[Cursor | None, Cursor | None]:
    if not rows:
        return None, None
    if view.after is not None:
        return (rows[0].cursor if more else None), rows[-1].cursor
    newer = rows[0].cursor if view.before is not None else None
    return newer, (rows[-1].cursor if more else None)
