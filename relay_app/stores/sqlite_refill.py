"""Refill's reads on SQLite: hot rows and archived ids together, by report time; the
recent hours' digests kept in memory (relay_app.stores.sqlite_digests)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from relay_app.store_refill import DigestPage
from relay_app.stores.sqlite_digests import KeptDigests
from relay_app.stores.sqlite_pool import ReadPool
from runtime.core.digest import Digests, bucket_of, bucket_start, digests_of

HOT_ROWS = (
    "SELECT timestamp, msg_id FROM messages INDEXED BY idx_inbox_agent_ts"
    " WHERE agent_id = ? AND timestamp >= ? AND timestamp < ? AND node_id = ? ORDER BY timestamp"
)
ARCHIVED_ROWS = (
    "SELECT timestamp, msg_id FROM archived_ids INDEXED BY idx_archived_agent_ts"
    " WHERE agent_id = ? AND timestamp >= ? AND timestamp < ? AND node_id = ? ORDER BY timestamp"
)
# The highest row id ever given: a message stored later has a higher one, and a message
# restored from the archive keeps its own, lower one.
LAST_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'messages'"
IDS = (
    "SELECT msg_id FROM messages WHERE agent_id = ? AND timestamp >= ? AND timestamp < ?"
    " AND node_id = ? AND msg_id > ?"
    " UNION SELECT msg_id FROM archived_ids WHERE agent_id = ? AND timestamp >= ?"
    " AND timestamp < ? AND node_id = ? AND msg_id > ? ORDER BY msg_id LIMIT ?"
)


class SqliteRefill:
    """`RefillStore` on the read pool, with the hours of recent report times kept."""

    def __init__(self, pool: ReadPool, kept: KeptDigests) -> None:
        self._pool = pool
        self._kept = kept

    def generation(self) -> int:
        """The generation migration 9 or a restore wrote."""
        with self._pool.read() as conn:
            row = conn.execute("SELECT value FROM store_meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def digests(
        self, agent_id: str, node_id: str, since: float, until: float, max_rows: int
    ) -> DigestPage:
        """Kept whole hours from memory; partial hours at either end, and hours older than
        those kept, from the table (those paged by `max_rows`)."""
        kept = self._kept.hours(agent_id, node_id, lambda at: self._build(agent_id, node_id, at))
        if kept is None:
            return self._scan(agent_id, node_id, since, until, max_rows)
        floor, hours = kept
        found: Digests = {}
        if since < floor:
            older = self._scan(agent_id, node_id, since, min(until, floor), max_rows)
            if older.next_since is not None or until <= floor:
                return older
            found, since = older.digests, floor
        first = bucket_of(since)
        whole_from = first if since == bucket_start(first) else first + 1
        whole_to = bucket_of(until) if math.isfinite(until) else math.inf  # exclusive
        found.update({h: d for h, d in hours.items() if whole_from <= h < whole_to})
        ends = {(since, min(until, bucket_start(first + 1)))} if whole_from > first else set()
        if whole_to != math.inf and until > bucket_start(int(whole_to)):
            ends.add((max(since, bucket_start(int(whole_to))), until))
        for lo, hi in ends:
            found.update(self._scan(agent_id, node_id, lo, hi, max_rows).digests)
        return DigestPage(found, None)

    def _build(self, agent_id: str, node_id: str, floor: float) -> tuple[int, Digests]:
        """Every hour from `floor` on, and the highest row id the read saw."""
        with self._pool.read() as conn:  # one read transaction: one snapshot for all three
            row = conn.execute(LAST_ID).fetchone()
            args = (agent_id, floor, math.inf, node_id)
            hot = conn.execute(HOT_ROWS, args).fetchall()
            archived = conn.execute(ARCHIVED_ROWS, args).fetchall()
        return (int(row[0]) if row else 0), digests_of([*hot, *archived])

    def _scan(
        self, agent_id: str, node_id: str, since: float, until: float, max_rows: int
    ) -> DigestPage:
        """Hot and archived rows in report-time order, each up to about `max_rows` and cut
        at an hour's edge; the page ends at the earlier cut."""
        with self._pool.read() as conn:
            args = (agent_id, since, until, node_id)
            hot, hot_cut = _take(conn.execute(HOT_ROWS, args), max_rows)
            archived, archived_cut = _take(conn.execute(ARCHIVED_ROWS, args), max_rows)
        cuts = [c for c in (hot_cut, archived_cut) if c is not None]
        cut = min(cuts) if cuts else None
        rows = (r for r in (*hot, *archived) if cut is None or r[0] < cut)
        return DigestPage(digests_of(rows), cut)

    def ids(
        self, agent_id: str, node_id: str, since: float, until: float, after: str, limit: int
    ) -> list[str]:
        """Hot and archived ids of the range, in msg_id order."""
        args = (agent_id, since, until, node_id, after)
        with self._pool.read() as conn:
            return [r[0] for r in conn.execute(IDS, (*args, *args, limit))]


Row = tuple[float, str]  # (timestamp, msg_id)


def _take(rows: Iterable[Row], max_rows: int) -> tuple[list[Row], float | None]:
    """Rows in report-time order until `max_rows` are taken and an hour ends; the rows, and
    where they stopped (None: at the end). An hour is never split: its digest needs all."""
    taken: list[Row] = []
    last: int | None = None
    for row in rows:
        bucket = bucket_of(row[0])
        if len(taken) >= max_rows and bucket != last:
            return taken, bucket_start(bucket)
        taken.append(row)
        last = bucket
    return taken, None
