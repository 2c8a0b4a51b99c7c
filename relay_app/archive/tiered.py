"""The store as readers see it once messages are archived: hot rows and archived rows as one.

`TieredStore` wraps an engine's store. Lookups by msg_id fall through to the archive;
GET /query/messages with `archived=include` and the inbox's Archived and All views merge
archived rows into their pages in the same order and under the same cursors (an archived
row keeps its id and report time). Every other read is the engine's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from relay_app.archive.matching import ArchiveQuery
from relay_app.archive.mover import archive_dir
from relay_app.archive.reader import ArchiveReader, Order
from relay_app.archive.tiered_inbox import TieredInbox
from relay_app.errors import BadRequest
from relay_app.store import MessagePage, MessageQuery, MessageStore, StoredListener, StoreFigures
from relay_app.store_archive import ArchiveStore
from relay_app.store_refill import RefillStore
from relay_app.store_sessions import SessionStore

MAX_PAGE_BYTES = 4 * 1024 * 1024
# What one GET /query/messages?archived=include may spend scanning the archive: past
# PAGE_S the request answers 503 (narrow it); past COUNT_S its total is null (unknown).
PAGE_S = 5.0
COUNT_S = 1.0  # as a hot page: content past this cuts the page


def with_archive(store: MessageStore, data_dir: str | Path) -> MessageStore:
    """`store` with its archive readable, or `store` itself when it keeps everything hot."""
    if isinstance(store, TieredStore) or store.archive is None:
        return store
    return TieredStore(store, ArchiveReader(store.archive, archive_dir(data_dir)))


def wire(row: dict[str, Any]) -> dict[str, Any]:
    """An archived row as GET /query/messages shows a message (its row id left out)."""
    return {k: v for k, v in row.items() if k != "id"}


class TieredStore:
    """An engine's store with its archive merged into the reads that should see it."""

    def __init__(self, hot: MessageStore, reader: ArchiveReader) -> None:
        """Read `hot` first, then `reader`'s segments."""
        self.hot = hot
        self.reader = reader
        self.inbox = TieredInbox(hot.inbox, reader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hot, name)  # an engine's own extras (its path, ...)

    @property
    def sessions(self) -> SessionStore:
        """The engine's sessions."""
        return self.hot.sessions

    @property
    def archive(self) -> ArchiveStore | None:
        """The engine's archive tables."""
        return self.hot.archive

    @property
    def refill(self) -> RefillStore:
        """The engine's refill reads (they count archived ids already)."""
        return self.hot.refill

    def open_writer(self) -> Any:
        """The engine's writer."""
        return self.hot.open_writer()

    def on_stored(self, listener: StoredListener) -> None:
        """Listen to the engine's commits."""
        self.hot.on_stored(listener)

    def get_message(self, msg_id: str) -> dict[str, Any] | None:
        """The hot message, else the archived one, else None."""
        found = self.hot.get_message(msg_id)
        if found is not None:
            return found
        archived = self.reader.lookup(msg_id)
        return None if archived is None else wire(archived[1])

    def query_messages(self, query: MessageQuery) -> MessagePage:
        """The engine's page, with archived rows merged in when the query asks for them."""
        wanted = _archive_query(query)
        if not query.archived or wanted is None:
            return self.hot.query_messages(query)
        order = Order(ascending=not query.descending)
        start = None
        if query.after_id is not None:
            if query.after_ts is None:
                # Its row may be archived, its place in the archive unknown: walking on
                # from the top would list the archive's first rows a second time.
                raise BadRequest("next: a cursor without a report time cannot page the archive")
            start = order.cursor(query.after_ts, query.after_id)
        hot = self.hot.query_messages(query)
        rows, more = self.reader.page(wanted, order, query.limit, start=start, budget_s=PAGE_S)
        merged = sorted(
            [
                (order.cursor(m["timestamp"], i), i, m)
                for i, m in zip(hot.ids, hot.messages, strict=True)
            ]
            + [(order.key(r), int(r["id"]), wire(r)) for r in rows],
            key=lambda ranked: ranked[0],
            reverse=True,
        )
        page = _cut(merged, query.limit)
        return MessagePage(
            messages=[m for _, _, m in page],
            total=_plus(hot.total, self._archived_total(query, wanted)),
            last_id=page[-1][1] if page else None,
            has_more=hot.has_more or more or len(page) < len(merged),
            ids=[i for _, i, _ in page],
            last_ts=float(page[-1][2]["timestamp"]) if page else None,
        )

    def _archived_total(self, query: MessageQuery, wanted: ArchiveQuery) -> int | None:
        if not wanted.equal and query.since is None and query.until is None:
            return self.reader.total()
        return self.reader.count(wanted, cap=2**62, budget_s=COUNT_S)

    def mail_after(
        self, recipients: Sequence[str], after_id: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """The engine's mail (archived messages are not mail any more)."""
        return self.hot.mail_after(recipients, after_id, limit)

    def node_statuses(self) -> list[dict[str, Any]]:
        """The engine's node reports."""
        return self.hot.node_statuses()

    def get_file(self, file_id: str) -> Any:
        """The engine's file records."""
        return self.hot.get_file(file_id)

    def figures(self) -> StoreFigures:
        """The engine's figures and the archive's."""
        archived = self.reader.total()
        damaged = tuple(sorted(self.reader.damaged_now()))
        hot = self.hot.figures()
        # The engine counts by its largest row id; moving the newest rows must not lower it.
        stored = max(hot.messages_stored, self.reader.max_id())
        return replace(hot, messages_stored=stored, archived_messages=archived,
                       archive_bytes=self.reader.size(), damaged_segments=damaged)  # fmt: skip

    def close(self) -> None:
        """Close the engine's reads."""
        self.hot.close()


def _plus(hot: int | None, archived: int | None) -> int | None:
    return None if hot is None or archived is None else hot + archived


def _archive_query(query: MessageQuery) -> ArchiveQuery | None:
    """The archive's side of a node API query; None when no archived row can match."""
    equal = dict(query.filters)
    statuses = equal.pop("status", None)
    if statuses is not None and "archived" not in statuses:
        return None
    return ArchiveQuery(tuple(equal.items()), query.since, query.until)


Ranked = tuple[tuple[float, ...], int, dict[str, Any]]


def _cut(merged: list[Ranked], limit: int) -> list[Ranked]:
    """The first `limit` rows, fewer once their content passes MAX_PAGE_BYTES."""
    page: list[Ranked] = []
    size = 0
    for ranked in merged[:limit]:
        if page and size > MAX_PAGE_BYTES:
            break
        size += len(orjson.dumps(ranked[2]["content"]))
        page.append(ranked)
    return page
