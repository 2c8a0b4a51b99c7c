"""Restore: an archived message back to the hot inbox, acknowledged."""

from __future__ import annotations

from collections.abc import Sequence

from relay_app.archive.tiered import TieredStore
from relay_app.store import MessageStore
from relay_app.store_archive import ArchiveRestore, Candidate
from relay_app.store_inbox import Audit
from relay_app.store_search import MAX_INDEXED_CHARS, content_text


def restore_op(store: MessageStore, msg_ids: Sequence[str], audit: Audit) -> ArchiveRestore | None:
    """The op restoring those of `msg_ids` in the archive; None when none is."""
    if not isinstance(store, TieredStore) or not msg_ids:
        return None
    found = store.reader.lookup_many(tuple(msg_ids))
    rows = tuple(
        (segment_id, Candidate(row, content_text(row["content"], MAX_INDEXED_CHARS)))
        for segment_id, row in found.values()
    )
    return ArchiveRestore(rows, audit) if rows else None
