"""The cache's refill digests: what is held whole, across evictions and restarts."""

from __future__ import annotations

from pathlib import Path

from actors.cache_store import CacheStore
from runtime.core.digest import BUCKET_SECONDS, bucket_of
from runtime.core.envelope import MessageEnvelope

H = float(BUCKET_SECONDS)
T = 1_780_000_000.0 - (1_780_000_000.0 % H)


def env(i: int, ts: float) -> MessageEnvelope:
    return MessageEnvelope(msg_id=f"m{i}", timestamp=ts, agent_id="a1", node_id="n1",
                           content={"i": i})  # fmt: skip


def held_hours(cache: CacheStore) -> tuple[float, list[int]]:
    report = cache.held.report(T - 50 * H)
    for _ in range(100):
        if report.ready:
            break
        report = cache.held.report(T - 50 * H)
    return report.since, sorted(report.digests)


def test_hours_eviction_emptied_stay_out_after_a_restart(tmp_path: Path) -> None:
    """A message acknowledged late, older than what eviction took, does not pull the
    horizon back below the emptied hours: not now, nor after a restart."""
    path = tmp_path / "messages.db"
    cache = CacheStore(path, agent_id="a1", max_bytes=10**9, clock=lambda: T + 100 * H)
    cache.write_many([env(0, T)])  # stays unsynced for a while
    cache.write_many([env(i, T + i * H) for i in range(1, 11)])
    cache.mark_synced([f"m{i}" for i in range(1, 11)])
    assert cache.evict_synced(5) == 5  # hours T+1 .. T+5 emptied
    cache.mark_synced(["m0"])
    before = held_hours(cache)
    cache.close()
    again = CacheStore(path, agent_id="a1", max_bytes=10**9, clock=lambda: T + 100 * H)
    try:
        assert held_hours(again) == before
        since, hours = before
        assert since == T + 5 * H
        assert hours == [bucket_of(T + i * H) for i in range(6, 11)]  # m5 went too
        assert again.held.acked_counts(T) == {bucket_of(T + i * H): 1 for i in range(11)}
    finally:
        again.close()
