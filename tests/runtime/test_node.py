"""A node with real CacheActors under the real supervisor, without a relay."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.cache import CacheActor
from actors.messages import Get, MarkSynced, Write
from runtime.core.config import AgentConfig, CacheConfig, ClusterConfig, NodeEntry, RelaySettings
from runtime.core.envelope import MessageEnvelope
from runtime.core.errors import SupervisorGaveUp
from runtime.core.supervisor import ChildSpec, Supervisor
from runtime.node.node import Node, NodeOptions

NODE = "node-a"


def cluster(*agent_ids: str) -> ClusterConfig:
    agents = tuple(
        AgentConfig(agent_id=a, role="coder", node_id=NODE, cache=CacheConfig(max_bytes=10**9))
        for a in agent_ids
    )
    storage = NodeEntry(id="htpc", host="127.0.0.1", port=9, role="storage")
    return ClusterConfig(nodes=(storage,), relay=RelaySettings(), agents=agents)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    with Node(cluster("a1", "a2"), NODE, NodeOptions(data_dir=str(tmp_path))) as running:
        yield running


def test_an_agent_writes_reads_and_queries_through_the_api(node: Node) -> None:
    agent = node.agent("a1")
    msg_id = agent.write({"report": "hot lead"}, task_id="t1", priority="high")
    got = agent.read(msg_id)
    assert got is not None
    assert got.content == {"report": "hot lead"}
    assert got.priority == "high"
    assert got.role == "coder"
    assert [m.msg_id for m in agent.query(task_id="t1")] == [msg_id]
    future = agent.write_async("later")
    assert agent.read(future.get(timeout=5)) is not None
    assert agent.read("no-such-id") is None
    with pytest.raises(KeyError, match="not configured"):
        node.agent("ghost")


def test_eight_threads_write_ten_thousand_messages_each_stored_once_across_a_restart(
    tmp_path: Path,
) -> None:
    options = NodeOptions(data_dir=str(tmp_path))
    ids: list[list[str]] = [[] for _ in range(8)]
    with Node(cluster("a1"), NODE, options) as node:
        agent = node.agent("a1")

        def writer(slot: int) -> None:
            for i in range(1250):
                ids[slot].append(agent.write({"slot": slot, "i": i}))

        threads = [threading.Thread(target=writer, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        flat = [m for slot in ids for m in slot]
        assert len(set(flat)) == 10_000
        assert agent.stats().message_count == 10_000
    with Node(cluster("a1"), NODE, options) as again:
        agent = again.agent("a1")
        assert agent.stats().message_count == 10_000
        for slot, slot_ids in enumerate(ids):
            for i, msg_id in enumerate(slot_ids[::125]):
                got = agent.read(msg_id)
                assert got is not None
                assert got.content == {"slot": slot, "i": i * 125}


def test_a_cache_actor_crashing_on_a_message_is_restarted_and_loses_nothing(node: Node) -> None:
    agent = node.agent("a1")
    before = [agent.write({"i": i}) for i in range(50)]
    cache = node.actors["a1"].cache
    cache.tell(MarkSynced(msg_ids=5))  # type: ignore[arg-type]  # a malformed told message crashes it
    after = agent.write("after the crash", timeout=10)
    assert cache.restarts >= 1
    assert all(agent.read(m) is not None for m in [*before, after])
    assert node.healthy()


class FlakyCache(CacheActor):
    """Fails in on_start while the shared counter says so (pykka calls no on_failure then)."""

    failures_left: dict[str, int] = {"n": 0}  # noqa: RUF012 - shared on purpose across restarts

    def on_start(self) -> None:
        if self.failures_left["n"] > 0:
            self.failures_left["n"] -= 1
            raise RuntimeError("disk not ready")
        super().on_start()


def start_flaky(tmp_path: Path) -> Any:
    return FlakyCache.start(tmp_path / "messages.db", agent_id="a1", max_bytes=10**8)


def test_a_cache_actor_failing_in_on_start_is_restarted_and_keeps_committed_messages(
    tmp_path: Path,
) -> None:
    supervisor = Supervisor(backoff_base=0.01, backoff_cap=0.05)
    cache = supervisor.add(ChildSpec("cache", lambda: start_flaky(tmp_path)))
    supervisor.start()
    env = MessageEnvelope.new(agent_id="a1", node_id=NODE, content="kept")
    cache.ask(Write(env))
    FlakyCache.failures_left["n"] = 2
    cache.tell(MarkSynced(msg_ids=5))  # type: ignore[arg-type]
    assert cache.ask(Get(env.msg_id), timeout=10) == env
    assert cache.restarts == 3
    supervisor.stop()


def test_a_cache_actor_that_never_starts_makes_the_supervisor_give_up(tmp_path: Path) -> None:
    gave_up: list[SupervisorGaveUp] = []
    FlakyCache.failures_left["n"] = 1000
    supervisor = Supervisor(
        max_restarts=3,
        within_seconds=10,
        backoff_base=0.01,
        backoff_cap=0.02,
        on_give_up=gave_up.append,
    )
    supervisor.add(ChildSpec("cache", lambda: start_flaky(tmp_path)))
    supervisor.start()
    assert supervisor.wait(timeout=10)
    assert supervisor.gave_up
    assert len(gave_up) == 1
    FlakyCache.failures_left["n"] = 0
