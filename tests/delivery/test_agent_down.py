"""One agent whose actors keep crashing is down alone: the node and its other agents go on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from actors.cache_store import cache_path
from actors.outbox_store import outbox_path
from runtime.core.errors import ActorUnavailable, CommanderError
from runtime.node.client import NodeAdmin, NodeClient
from runtime.node.node import Node, NodeOptions
from tests.delivery.harness import relay_get, start_relay
from tests.delivery.procs import agent_status, metric, relay_and_node_dirs, scrape
from tests.support import TOKENS, cluster, wait_for


def corrupt(db: Path) -> None:
    """A cache file that is not a database any more (a disk fault, a bad copy)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not an SQLite database\n" * 200)


def test_an_agent_whose_cache_cannot_open_is_down_while_the_node_and_other_agents_go_on(
    tmp_path: Path,
) -> None:
    with relay_and_node_dirs(tmp_path) as procs:
        corrupt(cache_path(procs.node_data, "a1"))
        procs.start_relay()
        node = procs.start_node()
        wait_for(lambda: agent_status(node, "a1")["state"] == "down", timeout=30)
        a1, a2 = NodeClient(node.sockets, "a1"), NodeClient(node.sockets, "a2")
        written = [a2.write({"i": i}) for i in range(20)]
        for msg_id in written:
            wait_for(lambda m=msg_id: relay_get(procs.relay_url, m) is not None, timeout=20)
        started = time.monotonic()
        with pytest.raises(CommanderError, match="503"):
            a1.write("to a down agent")
        assert time.monotonic() - started < 1.0  # refused at once, not after a timeout

        status = agent_status(node, "a1")
        assert "cache:a1" in status["down_reason"]
        assert agent_status(node, "a2")["state"] == "up"
        health = requests.get(node.url + "/healthz", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert list(health.json()["agents_down"]) == ["a1"]
        samples = scrape(node.url)
        assert metric(samples, "commander_agent_up", node="node-a", agent="a1") == 0
        assert metric(samples, "commander_agent_up", node="node-a", agent="a2") == 1
        assert metric(samples, "commander_agent_down_total", node="node-a", agent="a1") == 1
        assert metric(samples, "commander_agent_down_total", node="node-a", agent="a2") == 0
        name = "commander_actor_restarts_total"
        restarts = metric(samples, name, node="node-a", actor="cache:a1")
        assert restarts >= 5
        assert metric(samples, "commander_node_healthy", node="node-a") == 1
        started = time.monotonic()
        retried = NodeAdmin(node.sockets, timeout=20).retry_failed()
        assert time.monotonic() - started < 1.0
        assert (list(retried["retried"]), list(retried["unavailable"])) == (
            ["a2"],
            ["a1"],
        )
        assert node.proc.poll() is None
        a1.close()
        a2.close()
        assert node.terminate() == 0


def test_a_down_agent_is_started_again_after_its_delay_and_works_once_its_file_is_mended(
    tmp_path: Path,
) -> None:
    config = cluster(tmp_path / "relay")
    relay = start_relay(config)
    db = cache_path(tmp_path / "a", "a1")
    corrupt(db)
    options = NodeOptions(
        data_dir=str(tmp_path / "a"),
        relay_url=relay.url,
        token=TOKENS["node-a"],
        agent_revive_base=1.0,
        agent_revive_cap=1.0,
    )
    node = Node(config, "node-a", options).start()
    try:
        wait_for(lambda: node.agent_state("a1") == "down", timeout=30)
        with pytest.raises(ActorUnavailable, match="down"):
            node.agent("a1").write("refused while down")
        db.unlink()  # the operator moves the broken file away
        wait_for(lambda: node.agent_state("a1") == "up", timeout=30)
        msg_id = node.agent("a1").write("after the revival")
        wait_for(lambda: relay_get(relay.url, msg_id) is not None, timeout=10)
        assert node.actors["a1"].supervisor.times_down == 1
        assert node.healthy()
    finally:
        node.stop()
        relay.stop()


def test_a_damaged_outbox_file_is_moved_aside_and_rebuilt_so_the_agent_stays_up(
    tmp_path: Path,
) -> None:
    with relay_and_node_dirs(tmp_path) as procs:
        node = procs.start_node()  # the relay is not there yet: messages wait unsynced
        a1 = NodeClient(node.sockets, "a1")
        waiting = [a1.write({"i": i}) for i in range(10)]
        a1.close()
        assert node.terminate() == 0
        damaged = outbox_path(procs.node_data, "a1")
        for part in damaged.parent.glob("outbox.db*"):
            part.unlink()
        corrupt(damaged)
        procs.start_relay()
        node = procs.start_node()
        a1 = NodeClient(node.sockets, "a1")
        waiting.append(a1.write("after the restart"))
        for msg_id in waiting:
            wait_for(lambda m=msg_id: relay_get(procs.relay_url, m) is not None, timeout=30)
        assert agent_status(node, "a1")["state"] == "up"
        samples = scrape(node.url)
        assert (
            metric(samples, "commander_actor_restarts_total", node="node-a", actor="outbox:a1") == 0
        )
        assert len(list(damaged.parent.glob("outbox.db.damaged-*"))) == 1
        a1.close()
        assert node.terminate() == 0
