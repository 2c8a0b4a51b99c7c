"""A partition: the relay is away while agents keep writing, then everything arrives.

12 s in the suite (writes go on through several of the outbox's retries and backoffs);
COMMANDER_PARTITION_SECONDS makes it longer for a soak.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from actors.messages import GetOutboxStats
from tests.delivery.harness import relay_rows, start_node, start_relay
from tests.support import cluster, free_port, wait_for

PARTITION_SECONDS = float(os.environ.get("COMMANDER_PARTITION_SECONDS", "12"))


@pytest.mark.slow
def test_a_partition_loses_nothing_and_catches_up(tmp_path: Path) -> None:
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port)
    relay = start_relay(config, port)
    node = start_node(config, "node-a", tmp_path / "a", relay.url)
    agents = [node.agent("a1"), node.agent("a2")]
    ids: list[str] = []
    try:
        ids += [agents[i % 2].write({"before": i}) for i in range(50)]
        relay.stop()
        away_since = time.monotonic()
        while time.monotonic() - away_since < PARTITION_SECONDS:
            started = time.perf_counter()
            ids += [agents[i % 2].write({"during": i}) for i in range(20)]
            write_ms = (time.perf_counter() - started) * 1000 / 20
            assert write_ms < 50, "writes must not slow down while the relay is away"
            time.sleep(0.1)
        depth = sum(
            node.actors[a].outbox.ask(GetOutboxStats()).pending_messages for a in ("a1", "a2")
        )
        lag = time.time() - min(a.stats().oldest_unsynced_ts or time.time() for a in agents)
        assert depth > 0
        assert lag >= PARTITION_SECONDS - 2
        relay = start_relay(config, port)
        catch_up = wait_for(lambda: all(a.stats().unsynced_count == 0 for a in agents), timeout=60)
        rows = relay_rows(tmp_path / "relay")
        assert all(len(rows[m]) == 1 for m in ids)
        print(
            f"\npartition: {len(ids)} messages, {depth} waited in the outbox,"
            f" lag reached {lag:.1f}s,"
            f" caught up {catch_up:.2f}s after the relay returned"
        )
    finally:
        node.stop()
        relay.stop()
