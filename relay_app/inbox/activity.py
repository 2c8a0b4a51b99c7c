"""Cheap aggregate reads for the inbox's charts and states: volume, throughput, executions."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

VOLUME_BUCKETS = 24  # one bar an hour over the last day
VOLUME_BUCKET_S = 3600.0
THROUGHPUT_BUCKETS = 12  # one point per 5 min over the last hour
THROUGHPUT_BUCKET_S = 300.0


@dataclass(frozen=True, slots=True)
class Series:
    """Counts in equal time buckets, oldest first, ending at `end`."""

    start: float
    bucket_s: float
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        """All counted messages."""
        return sum(self.counts)


def volume(conn: sqlite3.Connection, now: float) -> Series:
    """Messages per hour over the last day (report time; one range scan of its index)."""
    start = now - VOLUME_BUCKETS * VOLUME_BUCKET_S
    counts = [0] * VOLUME_BUCKETS
    rows = conn.execute(
        "SELECT CAST((timestamp - ?) / ? AS INTEGER) AS b, COUNT(*) FROM messages"
        " WHERE timestamp >= ? AND timestamp < ? GROUP BY b",
        (start, VOLUME_BUCKET_S, start, now),
    )
    for bucket, n in rows:
        if 0 <= bucket < VOLUME_BUCKETS:
            counts[bucket] = int(n)
    return Series(start, VOLUME_BUCKET_S, tuple(counts))


def throughput(conn: sqlite3.Connection, now: float) -> dict[str, Series]:
    """Messages per node per 5 minutes over the last hour (one range scan, grouped)."""
    start = now - THROUGHPUT_BUCKETS * THROUGHPUT_BUCKET_S
    found: dict[str, list[int]] = {}
    rows = conn.execute(
        "SELECT node_id, CAST((timestamp - ?) / ? AS INTEGER) AS b, COUNT(*) FROM messages"
        " WHERE timestamp >= ? AND timestamp < ? GROUP BY node_id, b",
        (start, THROUGHPUT_BUCKET_S, start, now),
    )
    for node_id, bucket, n in rows:
        counts = found.setdefault(str(node_id), [0] * THROUGHPUT_BUCKETS)
        if 0 <= bucket < THROUGHPUT_BUCKETS:
            counts[bucket] = int(n)
    return {n: Series(start, THROUGHPUT_BUCKET_S, tuple(c)) for n, c in found.items()}


def executed(conn: sqlite3.Connection, msg_ids: Sequence[str]) -> dict[str, str]:
    """report msg_id -> its follow-up's msg_id, for the reports Execute was run on."""
    if not msg_ids:
        return {}
    marks = ",".join("?" * len(msg_ids))
    rows = conn.execute(
        "SELECT msg_id, detail FROM inbox_audit"
        f" WHERE action = 'execute' AND detail IS NOT NULL AND msg_id IN ({marks})",
        list(msg_ids),
    )
    return {str(m): str(d) for m, d in rows}
