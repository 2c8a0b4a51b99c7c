"""The inbox's writes: status changes, the audit trail and the full-text index, all through
the IngestActor.

The IngestActor stays the only writer of the cluster database. Indexing decodes each new
message's gzip content here, in the indexer's thread, and hands the writer only the
prepared entries (`IndexEntries`), so the writer's transaction stays short.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from relay_app.archive.restore import restore_op
from relay_app.errors import RelayAppError
from relay_app.ingest import Ingest
from relay_app.store import MessageStore
from relay_app.store_inbox import Audit, RecordAudit, SetStatuses
from relay_app.store_search import IndexEntries

logger = logging.getLogger(__name__)

INDEX_CHUNK = 2000
# After new messages commit, the indexer waits this long to take them in one transaction:
# at 50 messages a second that is 4 index commits a second instead of one per message.
INDEX_DELAY_S = 0.25
# With no news it still looks this often (messages written by another process, a missed
# nudge), instead of waking the relay several times a second for nothing.
INDEX_FALLBACK_S = 5.0
# Chunks per pass at most, so a large backlog is indexed in steps between other writes.
MAX_CHUNKS_PER_PASS = 5


def prepare_index(store: MessageStore, limit: int = INDEX_CHUNK) -> IndexEntries | None:
    """Read the next `limit` unindexed messages and decode them into an IndexEntries op."""
    chunk = store.inbox.unindexed(limit)
    return None if chunk is None else chunk.entries()


class InboxWriter:
    """Status changes and indexing, submitted to the IngestActor; an indexer thread keeps
    the full-text index up, woken by the store when messages are stored."""

    def __init__(self, store: MessageStore, ingest: Ingest) -> None:
        """Start the indexer's thread; the store's commits of new messages wake it."""
        self._store = store
        self._ingest = ingest
        self._lock = threading.Lock()  # the indexer and tests may both ask for a pass
        self._news = threading.Event()
        self._stop = threading.Event()
        store.on_stored(lambda _recipients: self._news.set())
        self._thread = threading.Thread(target=self._index_loop, name="inbox-fts", daemon=True)
        self._thread.start()

    def _index_loop(self) -> None:
        """Index a short while after news arrives, or every INDEX_FALLBACK_S regardless."""
        self._news.set()  # what an earlier run left unindexed is taken at once
        while not self._stop.is_set():
            if self._news.wait(INDEX_FALLBACK_S) and self._stop.wait(INDEX_DELAY_S):
                return
            self._news.clear()  # news arriving during the pass sets it again
            try:
                backlog = self.index_soon()
            except Exception:  # the thread must outlive a bug in one pass
                logger.exception("full-text indexing pass failed; retried on the next one")
                backlog = False
            if backlog:
                self._news.set()  # more than one pass holds: the next after a short gather

    def index_soon(self) -> bool:
        """Index what arrived since the last pass, up to MAX_CHUNKS_PER_PASS chunks; return
        whether more is left (the indexer calls this; so can tests)."""
        with self._lock:
            for _ in range(MAX_CHUNKS_PER_PASS):
                try:
                    op = prepare_index(self._store, INDEX_CHUNK)
                    if op is None:
                        return False
                    self._ingest.submit(op)
                except RelayAppError as exc:
                    logger.warning("full-text indexing failed (retried on the next pass): %s", exc)
                    return False
                if len(op.entries) < INDEX_CHUNK:
                    return False
            return True

    def set_status(
        self,
        msg_ids: Sequence[str],
        status: str,
        from_statuses: Sequence[str],
        audit: Audit | None = None,
    ) -> int:
        """Change statuses (with `audit`, recorded for each message changed); return how
        many messages changed."""
        op = SetStatuses(tuple(msg_ids), status, tuple(from_statuses), audit)
        return self._ingest.submit(op).inserted

    def restore_archived(self, msg_ids: Sequence[str], audit: Audit) -> int:
        """Bring those of `msg_ids` moved to the archive back, acknowledged; return how many."""
        op = restore_op(self._store, msg_ids, audit)
        return 0 if op is None else self._ingest.submit(op).inserted

    def record_audit(self, audit: Audit, entries: Sequence[tuple[str, str | None]]) -> None:
        """Add audit entries: (msg_id, detail) each, all under `audit`."""
        if entries:
            self._ingest.submit(RecordAudit(audit, tuple(entries)))

    def stop(self) -> None:
        """Stop the indexer thread."""
        self._stop.set()
        self._news.set()
        self._thread.join(timeout=10)
