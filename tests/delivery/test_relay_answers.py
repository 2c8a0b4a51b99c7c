"""How a node handles each answer of the relay, through a scripted relay in front of a real one.

Try-later answers (network errors, timeouts, 401, 408, 429, 5xx, 507) are retried with
backoff until the relay answers; a message the relay refuses as invalid (another 4xx,
403 included) is set aside without holding back what comes behind it. Either way every
message ends up on the relay exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.cache import CacheActor
from actors.messages import Drain, GetOutboxStats, GetStats, OutboxStats, RetryFailed, Write
from actors.outbox import OutboxActor
from relay_app.server import RelayServer
from runtime.core.backoff import Backoff
from runtime.core.config import SyncConfig
from runtime.core.envelope import MessageEnvelope
from runtime.core.relay_client import RelayTarget
from runtime.core.sync_state import SyncState
from runtime.node.agent import AgentHandle
from runtime.node.node import Node, NodeOptions
from tests.delivery.harness import relay_rows, start_node, start_relay
from tests.delivery.scripted_relay import Answer, ScriptedRelay
from tests.support import TOKENS, cluster, free_port, wait_for

# Small backoff and a short HTTP deadline keep each case to a few seconds.
SYNC = SyncConfig(
    batch_size=5,
    interval_seconds=0.1,
    retry_max=3,
    retry_backoff_base=2.0,
    retry_cap_seconds=0.2,
    timeout_seconds=1.0,
)
RETRIED: list[Answer] = [500, 502, 503, 401, 408, 429, 507, "hang", "lost_ack"]
REFUSED = [400, 403, 404, 413, 422]


@dataclass
class Rig:
    """A real relay, the scripted relay in front of it, and a node talking to the latter."""

    relay: RelayServer
    fake: ScriptedRelay
    node: Node
    relay_data: Path

    @property
    def agent(self) -> AgentHandle:
        """Agent a1 of node-a."""
        return self.node.agent("a1")

    def outbox(self) -> OutboxStats:
        """a1's outbox figures."""
        stats: OutboxStats = self.node.actors["a1"].outbox.ask(GetOutboxStats())
        return stats

    def failures(self) -> int:
        """a1's failed attempts to reach the relay so far."""
        return self.node.actors["a1"].sync.snapshot().failures_total


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    config = cluster(tmp_path / "relay", sync=SYNC)
    relay = start_relay(config)
    fake = ScriptedRelay(relay.url).start()
    # After one failed write-through the uploader leaves the relay alone for a minute: every
    # message then travels in the outbox's batches, the only /sync/messages a script sees.
    options = NodeOptions(
        data_dir=str(tmp_path / "a"),
        relay_url=fake.url,
        token=TOKENS["node-a"],
        probe_interval=60.0,
        report_interval=0.5,
    )
    node = Node(config, "node-a", options).start()
    try:
        yield Rig(relay, fake, node, tmp_path / "relay")
    finally:
        node.stop()
        fake.stop()
        relay.stop()


def assert_each_once(relay_data: Path, msg_ids: list[str]) -> None:
    rows = relay_rows(relay_data)
    assert {m: len(rows.get(m, [])) for m in msg_ids} == dict.fromkeys(msg_ids, 1)


@pytest.mark.parametrize("answer", RETRIED, ids=str)
def test_an_answer_meaning_try_later_is_retried_until_every_message_lands_once(
    rig: Rig, answer: Answer
) -> None:
    rig.fake.always("/sync/message", 503)
    ids = [rig.agent.write("its write-through fails: the uploader leaves the relay alone")]
    wait_for(lambda: bool(rig.fake.answered("/sync/message", 503)), timeout=10)
    rig.fake.script("/sync/messages", answer, answer, answer)
    ids += [rig.agent.write({"i": i}) for i in range(12)]
    wait_for(lambda: len(rig.fake.answered("/sync/messages", answer)) == 3, timeout=30)
    wait_for(lambda: rig.agent.stats().unsynced_count == 0, timeout=30)
    assert_each_once(rig.relay_data, ids)
    assert (rig.outbox().failed_batches, rig.outbox().pending_messages) == (0, 0)
    # The batch answered first is sent again until stored, never skipped.
    first = rig.fake.answered("/sync/messages", answer)[0].batch_id
    assert first is not None
    assert [s.answer for s in rig.fake.batches(first)][-1] == 200, rig.fake.seen
    assert rig.failures() >= 3


def test_a_refused_token_is_retried_and_logged_as_an_error_naming_the_token(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.fake.always("/sync/message", 401)
    rig.fake.always("/sync/messages", 401)
    ids = [rig.agent.write({"i": i}) for i in range(7)]
    wait_for(lambda: len(rig.fake.answered("/sync/messages", 401)) >= 4, timeout=30)
    assert rig.outbox().failed_batches == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("401" in text and "token" in text for text in errors), errors
    rig.fake.always("/sync/message", None)  # the operator put the right token in place
    rig.fake.always("/sync/messages", None)
    wait_for(lambda: rig.agent.stats().unsynced_count == 0, timeout=30)
    assert_each_once(rig.relay_data, ids)


@pytest.mark.parametrize("status", REFUSED)
def test_a_message_the_relay_refuses_is_set_aside_and_the_messages_behind_it_flow(
    rig: Rig, status: int
) -> None:
    rig.fake.always("/sync/message", 503)
    poison = rig.agent.new_message({"refused": True})
    rig.fake.refuse(poison.msg_id, status)
    ids = [rig.agent.write({"i": i}) for i in range(3)]
    rig.agent.write_envelope(poison)
    ids += [rig.agent.write({"i": i}) for i in range(3, 12)]
    wait_for(lambda: rig.outbox().failed_batches >= 1, timeout=30)
    behind = [rig.agent.write({"behind": i}) for i in range(3)]
    wait_for(lambda: set(behind) <= relay_rows(rig.relay_data).keys(), timeout=30)
    wait_for(lambda: rig.outbox().pending_messages == 0, timeout=30)
    rows = relay_rows(rig.relay_data)
    assert poison.msg_id not in rows
    stored = [m for m in ids + behind if m in rows]
    assert all(len(rows[m]) == 1 for m in stored)
    # What is not on the relay waits, set aside with the refused message, nowhere lost.
    assert len(stored) + rig.outbox().failed_messages == len(ids) + len(behind) + 1
    sent = len(rig.fake.carrying(poison.msg_id))
    operator_retry(rig, poison)
    assert sent < len(rig.fake.carrying(poison.msg_id))
    assert_each_once(rig.relay_data, [*ids, poison.msg_id, *behind])


def operator_retry(rig: Rig, poison: MessageEnvelope) -> None:
    """The relay accepts the message now; the operator asks for the failed batches again."""
    rig.fake.refuse(poison.msg_id, None)
    assert rig.node.actors["a1"].outbox.ask(RetryFailed()) >= 1
    wait_for(lambda: rig.agent.stats().unsynced_count == 0, timeout=30)
    assert rig.outbox().failed_batches == 0


def test_a_relay_refusing_connections_is_retried_until_it_listens(tmp_path: Path) -> None:
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port, sync=SYNC)
    node = start_node(config, "node-a", tmp_path / "a", f"http://127.0.0.1:{port}")
    relay: RelayServer | None = None
    try:
        agent = node.agent("a1")
        ids = [agent.write({"i": i}) for i in range(8)]
        sync = node.actors["a1"].sync
        wait_for(lambda: sync.snapshot().failures_total >= 4, timeout=30)
        assert agent.stats().unsynced_count == 8
        relay = start_relay(config, port)
        wait_for(lambda: agent.stats().unsynced_count == 0, timeout=30)
        assert_each_once(tmp_path / "relay", ids)
    finally:
        node.stop()
        if relay is not None:
            relay.stop()


class ManualClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_retries_past_retry_max_keep_the_delay_at_its_ceiling_and_drop_nothing(
    tmp_path: Path,
) -> None:
    relay = start_relay(cluster(tmp_path / "relay"))
    fake = ScriptedRelay(relay.url).start()
    fake.script("/sync/messages", *[503] * 9)
    cache = CacheActor.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)
    envs = [MessageEnvelope.new(agent_id="a1", node_id="node-a", content=i) for i in range(7)]
    for env in envs:
        cache.ask(Write(env))
    clock, state = ManualClock(), SyncState()
    # rng 1.0: every delay is its ceiling, min(cap, base ** (min(n, retry_max) - 1)).
    outbox = OutboxActor.start(
        tmp_path / "outbox.db",
        agent_id="a1",
        node_id="node-a",
        cache=cache,
        target=RelayTarget(fake.url, "node-a", TOKENS["node-a"], 5.0),
        backoff=Backoff(base=2.0, retry_max=4, cap=60.0, rng=lambda: 1.0),
        sync_state=state,
        clock=clock,
    )
    try:
        wait_for(lambda: state.snapshot().failures_total == 1, timeout=10)  # the start's sweep
        delays = [step_past_backoff(outbox, clock) for _ in range(9)]
        assert delays == pytest.approx([1, 2, 4, 8, 8, 8, 8, 8, 8])
        assert state.snapshot().failures_total == 9
        wait_for(lambda: cache.ask(GetStats(), block=True).unsynced_count == 0, timeout=10)
        assert outbox_stats(outbox).consecutive_failures == 0
        assert_each_once(tmp_path / "relay", [e.msg_id for e in envs])
    finally:
        outbox.stop()
        cache.stop()
        fake.stop()
        relay.stop()


def outbox_stats(outbox: pykka.ActorRef[Any]) -> OutboxStats:
    """The outbox's figures, asked directly."""
    stats = outbox.ask(GetOutboxStats(), block=True)
    assert isinstance(stats, OutboxStats)
    return stats


def step_past_backoff(outbox: pykka.ActorRef[Any], clock: ManualClock) -> float:
    """Check the outbox holds back until its next attempt, then make that attempt."""
    stats = outbox_stats(outbox)
    delay = stats.next_attempt_at - clock.now
    assert outbox.ask(Drain()) == "backing off"
    clock.now = stats.next_attempt_at
    result = outbox.ask(Drain())
    assert result in ("retry", "acked")
    return delay
