"""Refill's reads on PostgreSQL: the digests are computed in SQL, as runtime.core.digest
defines them (count, and XOR of the first 8 bytes of each msg_id's MD5)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg
from psycopg.rows import TupleRow

from relay_app.store_refill import DigestPage
from runtime.core.digest import BUCKET_SECONDS, MASK, Digest, bucket_of, bucket_start

Conn = psycopg.Connection[TupleRow]
# One answer covers at most this many hours; the database does the work in C.
PAGE_BUCKETS = 24 * 31
DIGESTS = f"""
SELECT floor(timestamp / {BUCKET_SECONDS})::bigint AS bucket, count(*),
    bit_xor(('x' || left(md5(msg_id), 16))::bit(64)::bigint)
FROM messages
WHERE agent_id = %s AND node_id = %s AND timestamp >= %s AND timestamp < %s
GROUP BY bucket ORDER BY bucket
"""
FIRST = (
    "SELECT min(timestamp) FROM messages WHERE agent_id = %s AND node_id = %s AND timestamp >= %s"
)
# In code point order (COLLATE "C"), as SQLite and the node compare ids, whatever the
# database's locale: the node checks that each page's cursor moves past the last.
IDS = (
    "SELECT msg_id FROM messages WHERE agent_id = %s AND node_id = %s AND timestamp >= %s"
    ' AND timestamp < %s AND msg_id COLLATE "C" > %s ORDER BY msg_id COLLATE "C" LIMIT %s'
)


class PostgresRefill:
    """`RefillStore` on the store's pool."""

    def __init__(self, read: Callable[[], AbstractContextManager[Conn]]) -> None:
        self._read = read

    def generation(self) -> int:
        """The generation migration 4 wrote."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM store_meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def digests(
        self,
        agent_id: str,
        node_id: str,
        since: float,
        until: float,
        max_rows: int,  # noqa: ARG002 - SQLite's bound; here the database does the work
    ) -> DigestPage:
        """A month of hours at most per answer, from the first message at `since` on."""
        with self._read() as conn:
            first = conn.execute(FIRST, (agent_id, node_id, since)).fetchone()
            if first is None or first[0] is None:
                return DigestPage({}, None)
            end = min(until, bucket_start(bucket_of(first[0]) + PAGE_BUCKETS))
            rows = conn.execute(DIGESTS, (agent_id, node_id, since, end)).fetchall()
            more = conn.execute(FIRST, (agent_id, node_id, end)).fetchone()
        found = {int(b): Digest(int(n), int(x) & MASK) for b, n, x in rows}
        more_left = end < until and more is not None and more[0] is not None and more[0] < until
        return DigestPage(found, end if more_left else None)

    def ids(
        self, agent_id: str, node_id: str, since: float, until: float, after: str, limit: int
    ) -> list[str]:
        """The range's ids in msg_id order."""
        with self._read() as conn:
            rows = conn.execute(IDS, (agent_id, node_id, since, until, after, limit))
            return [r[0] for r in rows]
