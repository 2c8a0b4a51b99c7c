"""Refill's reads on SQLite: hot rows and archived ids together, by report time."""

from __future__ import annotations

from relay_app.store_refill import DigestPage
from relay_app.stores.sqlite_pool import ReadPool
from runtime.core.digest import Digest, Digests, bucket_of, bucket_start

HOT_ROWS = (
    "SELECT timestamp, msg_id FROM messages INDEXED BY idx_inbox_agent_ts"
    " WHERE agent_id = ? AND timestamp >= ? AND timestamp < ? AND node_id = ? ORDER BY timestamp"
)
ARCHIVED_ROWS = (
    "SELECT timestamp, msg_id FROM archived_ids"
    " WHERE agent_id = ? AND timestamp >= ? AND timestamp < ? AND node_id = ?"
)
IDS = (
    "SELECT msg_id FROM messages WHERE agent_id = ? AND timestamp >= ? AND timestamp < ?"
    " AND node_id = ? AND msg_id > ?"
    " UNION SELECT msg_id FROM archived_ids WHERE agent_id = ? AND timestamp >= ?"
    " AND timestamp < ? AND node_id = ? AND msg_id > ? ORDER BY msg_id LIMIT ?"
)


class SqliteRefill:
    """`RefillStore` on the read pool."""

    def __init__(self, pool: ReadPool) -> None:
        self._pool = pool

    def generation(self) -> int:
        """The generation migration 9 or a restore wrote."""
        with self._pool.read() as conn:
            row = conn.execute("SELECT value FROM store_meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def digests(
        self, agent_id: str, node_id: str, since: float, until: float, max_rows: int
    ) -> DigestPage:
        """Hot rows in report-time order up to about `max_rows`, cut at an hour's edge,
        then the archived ids of the same hours."""
        found: Digests = {}
        next_since: float | None = None
        rows = 0
        with self._pool.read() as conn:
            for timestamp, msg_id in conn.execute(HOT_ROWS, (agent_id, since, until, node_id)):
                bucket = bucket_of(timestamp)
                if rows >= max_rows and bucket not in found:
                    next_since = bucket_start(bucket)
                    break
                found.setdefault(bucket, Digest()).add(msg_id)
                rows += 1
            end = until if next_since is None else next_since
            for timestamp, msg_id in conn.execute(ARCHIVED_ROWS, (agent_id, since, end, node_id)):
                found.setdefault(bucket_of(timestamp), Digest()).add(msg_id)
        return DigestPage(found, next_since)

    def ids(
        self, agent_id: str, node_id: str, since: float, until: float, after: str, limit: int
    ) -> list[str]:
        """Hot and archived ids of the range, in msg_id order."""
        args = (agent_id, since, until, node_id, after)
        with self._pool.read() as conn:
            return [r[0] for r in conn.execute(IDS, (*args, *args, limit))]
