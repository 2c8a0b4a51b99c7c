"""The outbox counts a batch's failed attempts in outbox.db and reports them across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.cache import CacheActor
from actors.messages import Drain, Enqueue, GetOutboxStats, OutboxStats, Write
from actors.outbox import OutboxActor
from runtime.core.backoff import Backoff
from runtime.core.envelope import MessageEnvelope
from runtime.core.relay_client import RelayTarget
from runtime.core.sync_state import SyncState
from tests.support import free_port

NO_WAIT = Backoff(base=2.0, retry_max=10, cap=0.0)  # every retry is due at once


def start_outbox(tmp_path: Path, cache: Any, port: int) -> Any:
    """An outbox sending to a port nobody listens on: every attempt fails."""
    return OutboxActor.start(
        tmp_path / "outbox.db",
        agent_id="a1",
        node_id="n1",
        cache=cache,
        target=RelayTarget(f"http://127.0.0.1:{port}", "n1", "token", 1.0),
        backoff=NO_WAIT,
        sync_state=SyncState(),
    )


def fail_attempts(outbox: Any, count: int) -> OutboxStats:
    for _ in range(count):
        assert outbox.ask(Drain()) == "retry"
    stats: OutboxStats = outbox.ask(GetOutboxStats())
    return stats


def test_a_batchs_failed_attempts_survive_a_restart_and_show_in_the_stats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    cache = CacheActor.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    env = MessageEnvelope.new(agent_id="a1", node_id="n1", content={"lead": "ACME"})
    cache.ask(Write(env))
    outbox = start_outbox(tmp_path, cache, port)
    try:
        outbox.ask(Enqueue((env,)))
        first = fail_attempts(outbox, 3)
        outbox.stop()
        outbox = start_outbox(tmp_path, cache, port)
        again = fail_attempts(outbox, 1)
    finally:
        outbox.stop()
        cache.stop()

    assert (first.head_batch_attempts, first.consecutive_failures) == (3, 3)
    # A new incarnation starts its backoff over, but the batch's count goes on.
    assert (again.head_batch_attempts, again.consecutive_failures) == (4, 1)
    assert "failed 4 times" in caplog.text
