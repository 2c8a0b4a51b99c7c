"""A node entry's `sync_enabled` and `sync_endpoint` do what the README says, with a real relay.

`sync_enabled: false` keeps the node's messages local (sent once it is true again);
a node's own `sync_endpoint` is where it sends, before the storage node's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.core.config import ClusterConfig, NodeEntry, collect_problems
from runtime.core.tls import relay_urls
from runtime.node.node import Node, NodeOptions
from tests.delivery.harness import relay_rows, start_relay
from tests.support import TOKENS, cluster, free_port, wait_for


def with_entry(config: ClusterConfig, node_id: str, **changes: object) -> ClusterConfig:
    nodes = tuple(replace(n, **changes) if n.id == node_id else n for n in config.nodes)
    return replace(config, nodes=nodes)


def node_a(config: ClusterConfig, data_dir: Path, url: str | None) -> Node:
    """node-a with its token, not started (`with` starts and stops it)."""
    options = NodeOptions(data_dir=str(data_dir), relay_url=url, token=TOKENS["node-a"])
    return Node(config, "node-a", options)


def test_sync_disabled_keeps_messages_local_until_it_is_enabled_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = cluster(tmp_path / "relay")
    relay = start_relay(config)
    try:
        off = with_entry(config, "node-a", sync_enabled=False)
        with caplog.at_level(logging.WARNING), node_a(off, tmp_path / "a", relay.url) as node:
            ids = [node.agent("a1").write({"i": i}) for i in range(3)]
            time.sleep(1.0)  # five outbox intervals: had it been sending, it would have sent
            assert node.target is None
            assert node.mail_poller is None
            assert node.agent("a1").stats().unsynced_count == 3
        assert relay_rows(tmp_path / "relay") == {}
        assert "sync_enabled is false for node node-a" in caplog.text

        with node_a(config, tmp_path / "a", relay.url) as node:
            wait_for(lambda: set(relay_rows(tmp_path / "relay")) == set(ids), timeout=10)
            wait_for(lambda: node.agent("a1").stats().unsynced_count == 0, timeout=10)
    finally:
        relay.stop()


def test_a_nodes_own_sync_endpoint_is_where_it_sends(tmp_path: Path) -> None:
    relay = start_relay(cluster(tmp_path / "relay"))
    # The storage entry names a port nobody listens on; node-a's own entry the relay.
    config = cluster(tmp_path / "relay", relay_port=free_port())
    config = with_entry(config, "node-a", sync_endpoint=f"{relay.url}/sync/messages")
    try:
        with node_a(config, tmp_path / "a", None) as node:
            assert node.target is not None
            assert node.target.base_url == relay.url
            msg_id = node.agent("a1").write({"via": "own endpoint"})
            wait_for(lambda: msg_id in relay_rows(tmp_path / "relay"), timeout=10)
    finally:
        relay.stop()


def test_where_a_node_sends_flag_then_own_entry_then_storage_entry() -> None:
    storage = NodeEntry("htpc", "10.0.0.42", 8001, role="storage")
    laptop = NodeEntry("laptop", "10.0.0.43", 8002, sync_endpoint="http://vpn:8001/sync/messages")
    desk = NodeEntry("desk", "10.0.0.44", 8002)
    config = replace(cluster(Path("/nonexistent")), nodes=(storage, laptop, desk))

    assert relay_urls(config, "http://flag:1/", "laptop") == ("http://flag:1",)
    assert relay_urls(config, None, "laptop") == ("http://vpn:8001",)
    assert relay_urls(config, None, "desk") == ("http://10.0.0.42:8001",)
    endpoint = replace(storage, sync_endpoint="http://relay.lan:8001/sync/messages")
    config = replace(config, nodes=(endpoint, laptop, desk))
    assert relay_urls(config, None, "desk") == ("http://relay.lan:8001",)


def test_with_tls_an_http_endpoint_on_any_entry_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "relay.yaml").write_text(
        "nodes:\n"
        "  - {id: htpc, host: 10.0.0.42, port: 8001, role: storage,"
        " sync_endpoint: 'https://10.0.0.42:8001/sync/messages'}\n"
        "  - {id: laptop, host: 10.0.0.43, port: 8002,"
        " sync_endpoint: 'http://vpn:8001/sync/messages'}\n"
        "relay:\n  tls_cert_file: relay.pem\n  tls_key_file: relay.key\n"
    )
    _, problems = collect_problems(tmp_path)
    assert [(p.key, p.got) for p in problems] == [
        ("nodes[1].sync_endpoint", "http://vpn:8001/sync/messages")
    ]
