"""Refill with a real relay and a real node in this process: a relay that lost messages
gets them back from the node, exactly once, and equal sides exchange digests only."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import psycopg

from actors.messages import Reconcile, RefillStats
from relay_app.server import RelayServer
from runtime.core.config import ClusterConfig
from runtime.node.node import Node, NodeOptions
from tests.delivery.harness import postgres_rows, relay_rows, start_relay
from tests.support import TOKENS, cluster, free_port, wait_for

DB = Path("messages") / "cluster_messages.db"


def _node(config: ClusterConfig, data: Path, url: str) -> Node:
    options = NodeOptions(
        data_dir=str(data),
        relay_url=url,
        token=TOKENS["node-a"],
        probe_interval=0.2,
        report_interval=0.5,
        refill_check_interval=0.2,
        refill_interval=3600.0,
    )
    return Node(config, "node-a", options).start()


def _stats(node: Node, agent: str = "a1") -> RefillStats:
    return node.actors[agent].board.refill()


def _drop(relay_dir: Path, msg_ids: list[str]) -> None:
    """Take rows out of a stopped relay's database, as an older backup would lack them."""
    conn = sqlite3.connect(relay_dir / DB)
    with conn:
        conn.executemany("DELETE FROM messages WHERE msg_id = ?", [(m,) for m in msg_ids])
    conn.close()


def test_a_relay_that_lost_messages_gets_them_back_exactly_once(tmp_path: Path) -> None:
    """Lost on the relay while it was down: the node's refill sends them again."""
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port)
    relay: RelayServer = start_relay(config, port)
    node = _node(config, tmp_path / "a", relay.url)
    try:
        agent = node.agent("a1")
        ids = [agent.write({"i": i}) for i in range(120)]
        wait_for(lambda: agent.stats().unsynced_count == 0, timeout=15)
        wait_for(lambda: _stats(node).passes >= 1, timeout=10)
        relay.stop()
        _drop(tmp_path / "relay", ids[40:])
        relay = start_relay(config, port)
        wait_for(lambda: len(relay_rows(tmp_path / "relay")) == 120, timeout=30)
        rows = relay_rows(tmp_path / "relay")
        assert sorted(rows) == sorted(ids)
        assert all(len(r) == 1 for r in rows.values())
        assert rows[ids[77]] == [{"i": 77}]
        wait_for(lambda: _stats(node).refilled == 80, timeout=10)
    finally:
        node.stop()
        relay.stop()


def test_a_relay_on_postgresql_is_refilled_the_same_way(tmp_path: Path, postgres_dsn: str) -> None:
    """A PostgreSQL corpus that lost rows gets them back, computed digests and all."""
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port, store=postgres_dsn)
    relay: RelayServer = start_relay(config, port)
    node = _node(config, tmp_path / "a", relay.url)
    try:
        agent = node.agent("a2")
        ids = [agent.write({"i": i}) for i in range(60)]
        wait_for(lambda: agent.stats().unsynced_count == 0, timeout=15)
        wait_for(lambda: _stats(node, "a2").passes >= 1, timeout=10)
        relay.stop()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM messages WHERE msg_id = ANY(%s)", (ids[::2],))
        relay = start_relay(config, port)
        wait_for(lambda: len(postgres_rows(postgres_dsn)) == 60, timeout=30)
        rows = postgres_rows(postgres_dsn)
        assert rows[ids[10]] == [{"i": 10}]
        assert all(len(r) == 1 for r in rows.values())
        wait_for(lambda: _stats(node, "a2").refilled == 30, timeout=10)
    finally:
        node.stop()
        relay.stop()


def test_equal_sides_exchange_only_digests(tmp_path: Path) -> None:
    """A comparison of equal sides asks for digests and never for ids."""
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port)
    relay = start_relay(config, port)
    node = _node(config, tmp_path / "a", relay.url)
    try:
        agent = node.agent("a1")
        for i in range(50):
            agent.write({"i": i})
        wait_for(lambda: agent.stats().unsynced_count == 0, timeout=15)
        wait_for(lambda: _stats(node).state == "idle", timeout=10)
        assert node.reconciler is not None
        before = dataclasses.replace(_stats(node))
        node.reconciler.ask(Reconcile("test"))
        after = _stats(node)
        assert after.passes == before.passes + 1
        assert after.last_refilled == 0
        spent = after.digest_bytes - before.digest_bytes
        assert 0 < spent < 400, spent  # one digests answer for one hour, no id list
        print(f"an idle comparison of one agent's 50 messages exchanged {spent} bytes")
    finally:
        node.stop()
        relay.stop()
