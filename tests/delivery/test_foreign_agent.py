"""An agent the relay gives another node: its messages are set aside, the node's others flow on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import requests

from runtime.core.config import ClusterConfig
from runtime.node.client import NodeAdmin, NodeClient
from tests.delivery.harness import relay_get
from tests.delivery.procs import SYNC
from tests.support import cluster, free_port, start_node, start_relay, wait_for, write_config_dir


def moved(config: ClusterConfig, agent_id: str, node_id: str) -> ClusterConfig:
    """The same cluster with `agent_id` on `node_id`."""
    agents = tuple(
        dataclasses.replace(a, node_id=node_id) if a.agent_id == agent_id else a
        for a in config.agents
    )
    return dataclasses.replace(config, agents=agents)


def test_a_node_whose_agent_the_relay_gives_another_node_sets_it_aside_and_goes_on(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port, sync=SYNC)  # node-a runs a1 and a2
    node_dir = write_config_dir(tmp_path / "node-config", config)
    # The relay's topology says a2 runs on node-b: node-a's token may not write for it.
    relay_dir = write_config_dir(tmp_path / "relay-config", moved(config, "a2", "node-b"))
    relay = start_relay(relay_dir, tmp_path / "relay", port, tmp_path / "relay.log")
    node_log = tmp_path / "node.log"
    node = start_node(node_dir, "node-a", tmp_path / "node-a", relay.url, node_log)
    a1, a2 = NodeClient(node.sockets, "a1"), NodeClient(node.sockets, "a2")
    admin = NodeAdmin(node.sockets)
    try:
        refused = [a2.write({"i": i}) for i in range(5)]
        delivered = [a1.write({"i": i}) for i in range(5)]
        wait_for(lambda: a2.status()["cache"]["set_aside_count"] == 5, 30)
        delivered.append(a1.write("after a2 was set aside"))
        for msg_id in delivered:
            wait_for(lambda m=msg_id: relay_get(relay.url, m) is not None, timeout=20)
        assert all(relay_get(relay.url, m) is None for m in refused)
        shown = dict(a2.status()["cache"]["set_aside_recent"])
        assert set(shown) == set(refused)
        assert all("an agent of node 'node-b'" in reason for reason in shown.values())
        assert a1.status()["cache"]["set_aside_count"] == 0
        assert requests.get(node.url + "/healthz", timeout=5).json()["status"] == "ok"
        wait_for(lambda: "status report refused by the relay" in node_log.read_text(), 20)

        # The operator gives a2 back to node-a on the relay (no restart) and retries.
        write_config_dir(tmp_path / "relay-config", config)
        wait_for(lambda: "agent files changed" in (tmp_path / "relay.log").read_text(), 20)
        admin.retry_failed()
        for msg_id in refused:
            wait_for(lambda m=msg_id: relay_get(relay.url, m) is not None, timeout=30)
        assert node.proc.poll() is None
    finally:
        a1.close()
        a2.close()
        assert node.terminate() == 0
        assert relay.terminate() == 0
