"""Building blocks of the delivery tests: relays and nodes in-process, reading the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import requests

from relay_app.server import RelayServer
from runtime.core.config import ClusterConfig
from runtime.core.envelope import decode_content
from runtime.node.node import Node, NodeOptions
from tests.support import TOKENS


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
    return dict(body.get("message", body))


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


def postgres_rows(dsn: str) -> dict[str, list[Any]]:
    """relay_rows of a relay storing in PostgreSQL: msg_id -> every row's decoded content."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows: dict[str, list[Any]] = {}
        for msg_id, blob in conn.execute("SELECT msg_id, content FROM messages"):
            rows.setdefault(msg_id, []).append(decode_content(bytes(blob)))
        return rows
