"""A two-node cluster config with node tokens, and writing it as a config directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from relay_app.auth import token_sha256 as sha
from runtime.core.config import (
    AgentConfig,
    CacheConfig,
    ClusterConfig,
    NodeEntry,
    RelaySettings,
    SyncConfig,
)

TOKENS = {"node-a": "token-of-node-a-0123456789", "node-b": "token-of-node-b-9876543210"}
FAST_SYNC = SyncConfig(
    batch_size=100,
    interval_seconds=0.2,
    retry_max=10,
    retry_backoff_base=2.0,
    retry_cap_seconds=1.0,
    timeout_seconds=2.0,
)


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
