"""What one agent's cache holds of its own acknowledged messages, as refill compares it.

The set compared is the agent's own messages the relay acknowledged (synced = 1) that
the cache still holds, from its horizon on: the report time below which eviction and
retention may have taken some. Its digests by hour (runtime.core.digest) are kept in
memory, so an idle comparison costs a few dictionary reads: built once from the table,
a page per call so writes go on between pages, then kept by the acknowledgements and
evictions that change the set. The hour the horizon falls in is partly evicted; it is
read from the table each time, from the horizon on.

`acked_hours` counts, per hour, the agent's messages the relay ever acknowledged,
evicted or not: against the relay's counts it tells how many the relay lacks that this
cache can no longer send.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from runtime.core.digest import Digest, Digests, bucket_of, bucket_start, digests_of

CREATE_ACKED_HOURS = (
    "CREATE TABLE acked_hours (bucket INTEGER PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID"
)
# How far eviction and retention reached, kept across restarts: after one, the oldest
# message held can be older than hours eviction emptied (acknowledged late, or read back
# from the relay), and those hours must not count as held whole.
CREATE_MARKS = "CREATE TABLE cache_marks (key TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID"
SAVE_EVICTED = (
    "INSERT INTO cache_marks (key, value) VALUES ('evicted_to', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"
)
READ_EVICTED = "SELECT value FROM cache_marks WHERE key = 'evicted_to'"
COUNT_ACKED = (
    "INSERT INTO acked_hours (bucket, count) VALUES (?, ?)"
    " ON CONFLICT (bucket) DO UPDATE SET count = count + excluded.count"
)
OWN_ROWS = (
    "SELECT id, timestamp, msg_id FROM messages"
    " WHERE synced = 1 AND agent_id = ? AND id > ? ORDER BY id LIMIT ?"
)
OWN_RANGE = (
    "SELECT timestamp, msg_id FROM messages INDEXED BY idx_synced"
    " WHERE synced = 1 AND timestamp >= ? AND timestamp < ? AND agent_id = ?"
)
OLDEST_OWN = (
    "SELECT timestamp FROM messages INDEXED BY idx_synced"
    " WHERE synced = 1 AND agent_id = ? ORDER BY timestamp LIMIT 1"
)
BUILD_PAGE = 5000

# An acknowledged row as mark_synced returns it: (row id, timestamp, msg_id, agent_id).
AckedRow = tuple[int, float, str, str]


@dataclass(frozen=True, slots=True)
class HeldReport:
    """The digests of the held set from `since` on, or `ready` False while still building."""

    since: float
    digests: Digests = field(default_factory=dict)
    ready: bool = True


class HeldDigests:
    """The in-memory digests of one agent's held acknowledged messages."""

    def __init__(self, conn: sqlite3.Connection, agent_id: str) -> None:
        self._conn = conn
        self._agent_id = agent_id
        self._digests: Digests = {}
        self._built_to = 0  # rows with ids up to here are in _digests
        self._complete = False
        row = conn.execute(READ_EVICTED).fetchone()
        self._evicted_to = -math.inf if row is None else float(row[0])

    def report(self, since: float) -> HeldReport:
        """Digests from max(since, horizon) on; builds a page more first if not built."""
        if not self._complete:
            self._build_page()
            if not self._complete:
                return HeldReport(since, ready=False)
        start = max(since, self.horizon())
        first = bucket_of(start) if math.isfinite(start) else None
        found = {b: Digest(d.count, d.xor) for b, d in self._digests.items()
                 if d.count and (first is None or b > first)}  # fmt: skip
        if first is not None:
            end = bucket_start(first + 1)
            found.update(digests_of(self._conn.execute(OWN_RANGE, (start, end, self._agent_id))))
        return HeldReport(start, found)

    def ids(self, since: float, until: float) -> list[str]:
        """The held acknowledged ids reported in [since, until)."""
        rows = self._conn.execute(OWN_RANGE, (since, until, self._agent_id))
        return [msg_id for _, msg_id in rows]

    def horizon(self) -> float:
        """The report time from which this cache holds every acknowledged message it had."""
        row = self._conn.execute(OLDEST_OWN, (self._agent_id,)).fetchone()
        oldest = -math.inf if row is None else float(row[0])
        return max(oldest, self._evicted_to)

    def count_acked(self, rows: Sequence[AckedRow]) -> None:
        """Count newly acknowledged own rows in acked_hours (inside the caller's transaction)."""
        counts: dict[int, int] = {}
        for _, timestamp, _, agent_id in rows:
            if agent_id == self._agent_id:
                bucket = bucket_of(timestamp)
                counts[bucket] = counts.get(bucket, 0) + 1
        self._conn.executemany(COUNT_ACKED, counts.items())

    def acked(self, rows: Iterable[AckedRow]) -> None:
        """Newly acknowledged rows join the set (after their commit)."""
        for row_id, timestamp, msg_id, agent_id in rows:
            if agent_id == self._agent_id and row_id <= self._built_to:
                self._digests.setdefault(bucket_of(timestamp), Digest()).add(msg_id)

    def save_evicted(self, through: float) -> None:
        """Keep how far eviction reached (inside the caller's transaction)."""
        self._conn.execute(SAVE_EVICTED, (through,))

    def evicted(self, through: float) -> None:
        """Rows reported up to `through` may be gone: those hours leave the kept digests."""
        self._evicted_to = max(self._evicted_to, through)
        last = bucket_of(through)
        for bucket in [b for b in self._digests if b <= last]:
            del self._digests[bucket]

    def forget(self) -> None:
        """The set changed in a way not followed (own rows cached back): build again."""
        self._digests, self._built_to, self._complete = {}, 0, False

    def acked_counts(self, since: float) -> dict[int, int]:
        """acked_hours from the hour of `since` on."""
        rows = self._conn.execute(
            "SELECT bucket, count FROM acked_hours WHERE bucket >= ?", (bucket_of(since),)
        )
        return {int(b): int(n) for b, n in rows}

    def prune(self, before: float) -> None:
        """Drop acked_hours wholly before `before` (retention has taken those messages)."""
        self._conn.execute("DELETE FROM acked_hours WHERE bucket < ?", (bucket_of(before),))

    def _build_page(self) -> None:
        rows = self._conn.execute(OWN_ROWS, (self._agent_id, self._built_to, BUILD_PAGE)).fetchall()
        for row_id, timestamp, msg_id in rows:
            self._digests.setdefault(bucket_of(timestamp), Digest()).add(msg_id)
            self._built_to = row_id
        if len(rows) < BUILD_PAGE:
            self._complete = True
            self._built_to = 2**63 - 1  # every later row is followed by acked()
