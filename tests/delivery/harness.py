"""Building blocks of the delivery tests: a cluster config with node tokens, relays, nodes."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from relay_app.server import RelayServer
from runtime.config import (
    AgentConfig,
    CacheConfig,
    ClusterConfig,
    NodeEntry,
    RelaySettings,
    SyncConfig,
)
from runtime.envelope import decode_content
from runtime.node import Node, NodeOptions

TOKENS = {"node-a": "token-of-node-a-0123456789", "node-b": "token-of-node-b-9876543210"}
FAST_SYNC = SyncConfig(
    batch_size=100,
    interval_seconds=0.2,
    retry_max=10,
    retry_backoff_base=2.0,
    retry_cap_seconds=1.0,
    timeout_seconds=2.0,
)


def sha(token: str) -> str:
    """sha256 hex of a token, as relay.yaml stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the relay restarts on the same one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster(
    data_dir: Path, relay_port: int = 9, sync: SyncConfig = FAST_SYNC, **relay: Any
) -> ClusterConfig:
    """Two nodes with two agents each, and a relay keeping its data in data_dir."""
    nodes = (
        NodeEntry("htpc", "127.0.0.1", relay_port, role="storage"),
        *(NodeEntry(n, "127.0.0.1", 9, token_sha256=sha(t)) for n, t in TOKENS.items()),
    )
    agents = tuple(
        AgentConfig(f"{n[-1]}{i}", "recruiter", n, cache=CacheConfig(max_bytes=10**9), sync=sync)
        for n in TOKENS
        for i in (1, 2)
    )
    settings = RelaySettings(data_dir=str(data_dir), **{"min_free_bytes": 1, **relay})
    return ClusterConfig(nodes=nodes, relay=settings, agents=agents)


def write_config_dir(root: Path, config: ClusterConfig) -> Path:
    """Write a ClusterConfig as relay.yaml + agents/*.yaml, tokens under secrets/."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "secrets").mkdir(exist_ok=True)
    nodes = [
        {"id": n.id, "host": n.host, "port": n.port, "role": n.role}
        | ({"token_sha256": n.token_sha256} if n.token_sha256 else {})
        for n in config.nodes
    ]
    relay = {"data_dir": config.relay.data_dir, "min_free_bytes": config.relay.min_free_bytes}
    (root / "relay.yaml").write_text(yaml.safe_dump({"nodes": nodes, "relay": relay}))
    for agent in config.agents:
        sync = {k: getattr(agent.sync, k) for k in agent.sync.__dataclass_fields__}
        doc = {
            "agent_id": agent.agent_id,
            "role": agent.role,
            "node_id": agent.node_id,
            "cache": {"max_bytes": agent.cache.max_bytes},
            "sync": sync,
        }
        (root / "agents" / f"{agent.agent_id}.yaml").write_text(yaml.safe_dump(doc))
    for node_id, token in TOKENS.items():
        (root / "secrets" / f"{node_id}.token").write_text(token)
    return root


def start_relay(
    config: ClusterConfig, port: int = 0, free_bytes: Callable[[], int] | None = None
) -> RelayServer:
    """A relay in this process on 127.0.0.1."""
    return RelayServer(config, host="127.0.0.1", port=port, free_bytes=free_bytes).start()


def start_node(config: ClusterConfig, node_id: str, data_dir: Path, relay_url: str) -> Node:
    """A node in this process, pushing to relay_url."""
    options = NodeOptions(
        data_dir=str(data_dir),
        relay_url=relay_url,
        token=TOKENS[node_id],
        probe_interval=0.2,
        report_interval=0.5,
    )
    return Node(config, node_id, options).start()


def relay_get(url: str, msg_id: str, node_id: str = "node-a") -> dict[str, Any] | None:
    """GET one message from the relay as a node would."""
    headers = {"X-Commander-Node": node_id, "Authorization": f"Bearer {TOKENS[node_id]}"}
    response = requests.get(f"{url}/query/messages/{msg_id}", headers=headers, timeout=5)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body.get("message", body)


def relay_rows(data_dir: Path) -> dict[str, list[Any]]:
    """Read the cluster database directly: msg_id -> every row's decoded content."""
    path = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows: dict[str, list[Any]] = {}
        for msg_id, blob in conn.execute("SELECT msg_id, content FROM messages"):
            rows.setdefault(msg_id, []).append(decode_content(blob))
        return rows
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    """Poll until predicate() is true; return the seconds it took, or fail."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")
