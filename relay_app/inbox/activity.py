"""The inbox's charts: messages per hour over the last day, per node over the last hour."""

from __future__ import annotations

from dataclasses import dataclass

from relay_app.store_inbox import InboxStore

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


def volume(store: InboxStore, now: float, budget_s: float) -> Series:
    """Messages per hour over the last day (report time); QueryTooSlow past the budget."""
    start = now - VOLUME_BUCKETS * VOLUME_BUCKET_S
    counts = store.volume(start, VOLUME_BUCKET_S, VOLUME_BUCKETS, budget_s)
    return Series(start, VOLUME_BUCKET_S, tuple(counts))


def throughput(store: InboxStore, now: float, budget_s: float) -> dict[str, Series]:
    """Messages per node per 5 minutes over the last hour; QueryTooSlow past the budget."""
    start = now - THROUGHPUT_BUCKETS * THROUGHPUT_BUCKET_S
    found = store.node_volume(start, THROUGHPUT_BUCKET_S, THROUGHPUT_BUCKETS, budget_s)
    return {n: Series(start, THROUGHPUT_BUCKET_S, tuple(c)) for n, c in found.items()}
