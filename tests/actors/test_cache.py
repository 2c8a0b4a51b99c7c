"""CacheActor on a real SQLite file: group commit, eviction, retention, full cache."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors.cache import CacheActor
from actors.messages import (
    CacheRemote,
    Get,
    GetStats,
    ListUnsynced,
    Maintain,
    MarkSynced,
    Query,
    Write,
)
from runtime.core.envelope import MessageEnvelope
from runtime.core.errors import CacheFull, InvalidMessage


def msg(i: int = 0, *, ts: float | None = None, size: int = 10, **fields: Any) -> MessageEnvelope:
    """A message with `size` incompressible bytes of content (hex of random bytes)."""
    pad = os.urandom(size // 2).hex()
    env = MessageEnvelope.new(agent_id="a1", node_id="n1", content={"i": i, "pad": pad}, **fields)
    return env if ts is None else dataclasses.replace(env, timestamp=ts)


class _Block:
    """A test-only message that holds the actor busy until the gate opens."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate


class BlockingCache(CacheActor):
    """CacheActor plus the _Block message; otherwise the real thing."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Block):
            message.gate.wait(10)
            return None
        return super().on_receive(message)


def start(tmp_path: Path, **kwargs: Any) -> pykka.ActorRef[CacheActor]:
    options: dict[str, Any] = {"agent_id": "a1", "max_bytes": 50 * 1024 * 1024}
    options.update(kwargs)
    return BlockingCache.start(tmp_path / "cache" / "a1" / "messages.db", **options)


def fill_until_full(
    ref: pykka.ActorRef[CacheActor], size: int
) -> tuple[list[MessageEnvelope], CacheFull]:
    """Write until the cache refuses; return what was committed and the refusal."""
    written: list[MessageEnvelope] = []
    for i in range(10_000):
        env = msg(i, size=size)
        try:
            ref.ask(Write(env))
        except CacheFull as exc:
            return written, exc
        written.append(env)
    raise AssertionError("the cache never filled up")


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[pykka.ActorRef[CacheActor]]:
    ref = start(tmp_path)
    yield ref
    ref.stop()


def test_a_write_returns_its_msg_id_and_reads_back(cache: pykka.ActorRef[CacheActor]) -> None:
    env = msg(1, task_id="t1", recipient="boss")
    assert cache.ask(Write(env)) == env.msg_id
    assert cache.ask(Get(env.msg_id)) == env
    assert cache.ask(Query(task_id="t1")) == [env]
    assert cache.ask(Query(recipient="nobody")) == []


def test_writing_the_same_message_twice_stores_it_once(cache: pykka.ActorRef[CacheActor]) -> None:
    env = msg(1)
    cache.ask(Write(env))
    cache.ask(Write(env))
    assert cache.ask(GetStats()).message_count == 1


def test_writes_waiting_in_the_mailbox_share_one_transaction(tmp_path: Path) -> None:
    commits: list[int] = []
    ref = start(tmp_path, on_commit=lambda envs: commits.append(len(envs)))
    gate = threading.Event()
    # Hold the actor busy so the writes pile up in its inbox, then release it.
    ref.tell(_Block(gate))
    futures = [ref.ask(Write(msg(i)), block=False) for i in range(200)]
    gate.set()
    ids = [f.get(timeout=10) for f in futures]
    ref.ask(GetStats())  # the listener hears of commits after the replies: let it catch up
    assert len(set(ids)) == 200
    assert sum(commits) == 200
    assert max(commits) > 100, commits
    ref.stop()


def test_the_writer_hears_its_reply_before_the_listener_runs(tmp_path: Path) -> None:
    """The uploader is told after the reply: a slow listener never delays a write."""
    release, heard = threading.Event(), []

    def slow_listener(envs: Any) -> None:
        heard.extend(e.msg_id for e in envs)
        release.wait(10)

    ref = start(tmp_path, on_commit=slow_listener)
    try:
        env = msg(1)
        assert ref.ask(Write(env), timeout=5) == env.msg_id  # the listener is still blocked
        release.set()
        ref.ask(GetStats(), timeout=10)
        assert heard == [env.msg_id]
    finally:
        release.set()
        ref.stop()


def test_unsynced_list_and_mark_synced(cache: pykka.ActorRef[CacheActor]) -> None:
    envs = [msg(i) for i in range(5)]
    for env in envs:
        cache.ask(Write(env))
    rows = cache.ask(ListUnsynced(limit=3))
    assert [r.envelope.msg_id for r in rows] == [e.msg_id for e in envs[:3]]
    more = cache.ask(ListUnsynced(limit=10, after_id=rows[-1].row_id))
    assert [r.envelope.msg_id for r in more] == [e.msg_id for e in envs[3:]]
    assert cache.ask(MarkSynced(tuple(e.msg_id for e in envs[:4]))) == 4
    stats = cache.ask(GetStats())
    assert stats.unsynced_count == 1
    assert stats.oldest_unsynced_ts == envs[4].timestamp


def test_eviction_removes_oldest_synced_and_never_an_unsynced(tmp_path: Path) -> None:
    ref = start(tmp_path, max_bytes=400 * 1024)
    synced = [msg(i, size=8000) for i in range(60)]
    for env in synced:
        ref.ask(Write(env))
    ref.ask(MarkSynced(tuple(e.msg_id for e in synced)))
    unsynced = [msg(i, size=8000) for i in range(100, 160)]
    for env in unsynced:
        ref.ask(Write(env))
    stats = ref.ask(GetStats())
    assert stats.bytes_used <= 400 * 1024
    assert all(ref.ask(Get(e.msg_id)) is not None for e in unsynced)
    assert ref.ask(Get(synced[0].msg_id)) is None  # the oldest went first
    ref.stop()


def test_cache_full_when_unsynced_fill_it_then_clears_once_synced(tmp_path: Path) -> None:
    ref = start(tmp_path, max_bytes=300 * 1024)
    written, error = fill_until_full(ref, size=2000)
    assert "'a1'" in str(error)
    assert "307200" in str(error)
    assert ref.is_alive()
    stats = ref.ask(GetStats())
    assert stats.full
    assert stats.refused_writes == 1
    assert stats.unsynced_count == len(written)
    ref.ask(MarkSynced(tuple(e.msg_id for e in written)))
    fresh = msg(9999, size=2000)
    assert ref.ask(Write(fresh)) == fresh.msg_id
    assert not ref.ask(GetStats()).full
    ref.stop()


def test_a_real_disk_full_from_sqlite_is_a_clean_cache_full(tmp_path: Path) -> None:
    # max_page_count makes SQLite itself answer SQLITE_FULL, as a full disk would.
    ref = start(tmp_path, max_page_count=64)
    written, error = fill_until_full(ref, size=3000)
    assert "disk or database is full" in str(error)
    assert ref.is_alive()
    assert all(ref.ask(Get(e.msg_id)) == e for e in written)
    ref.ask(MarkSynced(tuple(e.msg_id for e in written)))
    fresh = msg(5000, size=3000)
    assert ref.ask(Write(fresh)) == fresh.msg_id
    ref.stop()


def test_a_fire_and_forget_write_that_does_not_fit_does_not_crash_the_actor(
    tmp_path: Path,
) -> None:
    ref = start(tmp_path, max_bytes=100 * 1024)
    for i in range(200):
        ref.tell(Write(msg(i, size=2000), reply=False))
    stats = ref.ask(GetStats())
    assert ref.is_alive()
    assert stats.refused_writes > 0
    assert stats.message_count + stats.refused_writes == 200
    ref.stop()


def test_retention_removes_old_synced_messages_only(tmp_path: Path) -> None:
    now = 1_000_000_000.0
    ref = start(tmp_path, retention_days=1, clock=lambda: now)
    old_synced, old_unsynced, recent = (
        msg(1, ts=now - 3 * 86400),
        msg(2, ts=now - 3 * 86400),
        msg(3, ts=now),
    )
    for env in (old_synced, old_unsynced, recent):
        ref.ask(Write(env))
    ref.ask(MarkSynced((old_synced.msg_id, recent.msg_id)))
    assert ref.ask(Maintain()) == 1
    assert ref.ask(Get(old_synced.msg_id)) is None
    assert ref.ask(Get(old_unsynced.msg_id)) is not None
    assert ref.ask(Get(recent.msg_id)) is not None
    ref.stop()


def test_remote_messages_are_cached_as_synced(cache: pykka.ActorRef[CacheActor]) -> None:
    other = MessageEnvelope.new(agent_id="b2", node_id="n2", content="from afar")
    assert cache.ask(CacheRemote((other,))) == 1
    assert cache.ask(Get(other.msg_id)) == other
    assert cache.ask(GetStats()).unsynced_count == 0


def test_messages_survive_a_restart_of_the_actor(tmp_path: Path) -> None:
    ref = start(tmp_path)
    envs = [msg(i) for i in range(20)]
    for env in envs:
        ref.ask(Write(env))
    ref.stop()
    again = start(tmp_path)
    assert [again.ask(Get(e.msg_id)) for e in envs] == envs
    again.stop()


def test_a_query_stops_after_about_four_mib_of_content(
    cache: pykka.ActorRef[CacheActor],
) -> None:
    big = "x" * (1024 * 1024 - 64)  # compresses to almost nothing: the bound is on content
    written = [
        cache.ask(
            Write(MessageEnvelope.new(agent_id="a1", node_id="n1", content={"i": i, "b": big}))
        )
        for i in range(40)
    ]
    first = cache.ask(Query(limit=1000))
    assert 3 <= len(first) <= 5
    assert [env.msg_id for env in first] == written[: len(first)]
    seen = [env.msg_id for env in first]
    for _ in range(30):  # continuing with `since` reaches every message
        page = cache.ask(Query(limit=1000, since=first[-1].timestamp))
        seen += [env.msg_id for env in page if env.msg_id not in seen]
        first = page
    assert seen == written


def test_a_write_under_the_id_of_a_message_read_from_the_relay_is_refused_not_shadowed(
    tmp_path: Path,
) -> None:
    # An agent that picks its own ids (a retry stays idempotent) and looked one up first:
    # the relay's copy, another node's, must not stand in for the agent's own message.
    commits: list[int] = []
    cache = start(tmp_path, on_commit=lambda envs: commits.append(len(envs)))
    theirs = MessageEnvelope.new(agent_id="b2", node_id="n2", content="squatted", msg_id="t-42")
    assert cache.ask(CacheRemote((theirs,))) == 1
    gate = threading.Event()
    cache.tell(_Block(gate))
    own, other = msg(1, msg_id="t-42"), msg(2)
    futures = [cache.ask(Write(env), block=False) for env in (other, own)]
    gate.set()
    assert futures[0].get(timeout=10) == other.msg_id  # its neighbour in the group commits
    with pytest.raises(InvalidMessage, match="msg_id"):
        futures[1].get(timeout=10)
    assert cache.ask(Get("t-42")) == theirs
    assert cache.ask(GetStats()).unsynced_count == 1
    assert sum(commits) == 1  # only `other` goes to the uploader
    assert cache.ask(Write(msg(3, msg_id="t-43"))) == "t-43"
    cache.stop()
