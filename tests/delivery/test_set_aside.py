"""Stored messages no stage can process are set aside, counted and shown; the rest flows on."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import requests

from actors.cache_store import INSERT, MIGRATIONS, cache_path
from actors.messages import GetOutboxStats, GetStats
from runtime.core.envelope import encode_content, new_msg_id
from runtime.core.sqlite import connect, migrate
from runtime.node.client import NodeAdmin, NodeClient
from tests.delivery.harness import relay_get, start_node, start_relay
from tests.delivery.procs import agent_status, metric, relay_and_node_dirs, scrape
from tests.support import cluster, free_port, wait_for


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def insert_behind_its_back(db: Path, rows: list[tuple[str, float, bytes]], agent: str) -> None:
    """Rows written straight into messages.db, as an older version or a bug would have."""
    conn = connect(db)
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            migrate(conn, MIGRATIONS[:1])  # the first schema: what an older version left behind
        with conn:
            conn.executemany(
                INSERT,
                [
                    (m, ts, None, agent, None, "recruiter", blob, 0, "normal", "node-a", agent)
                    for m, ts, blob in rows
                ],
            )
    finally:
        conn.close()


def test_poison_stored_behind_the_nodes_back_is_set_aside_and_every_other_message_flows(
    tmp_path: Path,
) -> None:
    with relay_and_node_dirs(tmp_path) as procs:
        old = time.time() - 60
        poison = [
            (new_msg_id(), old, encode_content(nested(254))),  # one level too deep to send
            (new_msg_id(), old, b"\x1f\x8b but not gzip"),  # undecodable content
            (new_msg_id(), 9.9e15, encode_content({"far": "future"})),  # a newer rule refuses
        ]
        kept = (new_msg_id(), old, encode_content({"left": "unsent by the old version"}))
        db = cache_path(procs.node_data, "a1")
        db.parent.mkdir(parents=True)
        insert_behind_its_back(db, [*poison, kept], "a1")
        procs.start_relay()
        node = procs.start_node()
        a1, a2 = NodeClient(node.sockets, "a1"), NodeClient(node.sockets, "a2")
        fresh = [a1.write({"i": i}) for i in range(5)] + [a2.write({"i": i}) for i in range(5)]
        for msg_id in [kept[0], *fresh]:
            wait_for(lambda m=msg_id: relay_get(procs.relay_url, m) is not None, timeout=20)
        wait_for(lambda: agent_status(node, "a1")["cache"]["set_aside_count"] == 3, 20)
        assert all(relay_get(procs.relay_url, m) is None for m, _, _ in poison)
        shown = dict(agent_status(node, "a1")["cache"]["set_aside_recent"])
        assert set(shown) == {m for m, _, _ in poison}
        assert "timestamp" in shown[poison[2][0]]

        # Another one, written while the node runs: found by the outbox's sweep.
        deep = (new_msg_id(), old, encode_content(nested(254)))
        insert_behind_its_back(cache_path(procs.node_data, "a2"), [deep], "a2")
        wait_for(lambda: agent_status(node, "a2")["cache"]["set_aside_count"] == 1, 20)
        samples = scrape(node.url)
        assert metric(samples, "commander_set_aside_messages", node="node-a", agent="a1") == 3
        assert metric(samples, "commander_set_aside_messages", node="node-a", agent="a2") == 1
        assert metric(samples, "commander_agent_up", node="node-a", agent="a1") == 1
        for actor in ("cache:a1", "outbox:a1", "outbox:a2", "uploader"):
            restarts = "commander_actor_restarts_total"
            assert metric(samples, restarts, node="node-a", actor=actor) == 0
        wait_for(lambda: metric(scrape(node.url), "sync_lag_seconds", node="node-a") == 0, 20)

        # An operator retries them: tried once more, set aside again, nothing stops.
        log = tmp_path / "node.log"
        before = log.read_text().count("agent a1: 3 messages set aside")
        retried = NodeAdmin(node.sockets, timeout=20).retry_failed()
        assert retried["unavailable"] == {}
        wait_for(lambda: log.read_text().count("agent a1: 3 messages set aside") > before, 20)
        assert agent_status(node, "a1")["cache"]["set_aside_count"] == 3
        wait_for(lambda: agent_status(node, "a2")["cache"]["set_aside_count"] == 1, 20)
        after = a1.write("after the retry")
        wait_for(lambda: relay_get(procs.relay_url, after) is not None, timeout=20)
        assert node.proc.poll() is None
        assert requests.get(node.url + "/healthz", timeout=5).json()["status"] == "ok"
        a1.close()
        a2.close()
        assert node.terminate() == 0


def test_a_batch_the_relay_refuses_is_halved_until_only_the_refused_message_is_set_aside(
    tmp_path: Path,
) -> None:
    port = free_port()
    # The relay refuses bodies over 32 KB (413); the node takes messages up to 1 MiB.
    config = cluster(tmp_path / "relay", relay_port=port, max_body_bytes=32 * 1024)
    relay = start_relay(config, port)
    node = start_node(config, "node-a", tmp_path / "a", relay.url)
    try:
        relay.stop()  # the messages gather in the outbox, in one batch
        agent = node.agent("a1")
        good = [agent.write({"i": i}) for i in range(30)]
        big = agent.write({"blob": os.urandom(100_000).hex()})
        good += [agent.write({"i": i}) for i in range(30, 60)]
        outbox = node.actors["a1"].outbox
        wait_for(lambda: outbox.ask(GetOutboxStats()).pending_messages == 61, timeout=20)
        relay = start_relay(config, port)
        wait_for(lambda: agent.stats().unsynced_count == 0, timeout=30)
        assert all(relay_get(relay.url, m) is not None for m in good)
        assert relay_get(relay.url, big) is None
        stats = outbox.ask(GetOutboxStats())
        assert (stats.pending_messages, stats.failed_batches, stats.failed_messages) == (0, 1, 1)
        assert node.actors["a1"].cache.ask(GetStats()).set_aside_count == 1
    finally:
        node.stop()
        relay.stop()
