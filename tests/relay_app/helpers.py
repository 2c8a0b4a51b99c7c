"""Building blocks of the relay tests: a config with node tokens, HTTP clients, row counts."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import requests

from relay_app.auth import token_sha256 as sha
from relay_app.server import RelayServer
from runtime.core.config import AgentConfig, ClusterConfig, NodeEntry, RelaySettings
from runtime.core.envelope import MessageEnvelope
from tests.support import TOKENS, Daemon

NODE_A = "node-a"
NODE_B = "node-b"
# The agents write_config gives each node (message() writes as agent-1).
AGENTS = {NODE_A: ("agent-1", "agent-2"), NODE_B: ("agent-b1",)}
TABLES = ("messages", "batches", "node_status", "files")
# Data directory -> the postgresql:// URL its relay stores in (set by the `data_dir`
# fixture of tests/relay_app/conftest.py on the postgres engine); any other directory's
# relay stores in SQLite under it. make_config and the row readers below follow it.
PG_STORES: dict[Path, str] = {}


def make_config(
    data_dir: Path, agents: tuple[AgentConfig, ...] = (), **relay: Any
) -> ClusterConfig:
    """Two nodes with tokens in relay.yaml, the relay's data in data_dir, no disk floor.

    Without `agents` the relay runs open (`allow_any_agent`): these tests are about other
    doors and write for whatever agent they like; tests/relay_app/test_agent_owners.py
    gives agents and checks who may write for them.
    """
    nodes = tuple(
        NodeEntry(id=node, host="127.0.0.1", port=9, token_sha256=sha(token))
        for node, token in TOKENS.items()
    )
    defaults = {
        "min_free_bytes": 0,
        "allow_any_agent": not agents,
        "store": PG_STORES.get(data_dir, "sqlite"),
    }
    settings = RelaySettings(data_dir=str(data_dir), **{**defaults, **relay})
    return ClusterConfig(
        nodes=nodes, relay=settings, agents=agents, config_dir=str(data_dir.parent)
    )


def with_relay(config: ClusterConfig, **changes: Any) -> ClusterConfig:
    """The same config with some relay settings changed."""
    return replace(config, relay=replace(config.relay, **changes))


def message(node_id: str = NODE_A, agent_id: str = "agent-1", **fields: Any) -> MessageEnvelope:
    """A fresh valid message."""
    fields.setdefault("content", {"text": "hello", "n": 1})
    return MessageEnvelope.new(agent_id=agent_id, node_id=node_id, **fields)


def batch(messages: list[MessageEnvelope], batch_id: str, node_id: str = NODE_A) -> dict[str, Any]:
    """A /sync/messages body."""
    return {"batch_id": batch_id, "node_id": node_id, "messages": [m.to_wire() for m in messages]}


class NodeClient:
    """A node's view of the relay: a keep-alive session carrying its credentials."""

    def __init__(self, url: str, node_id: str = NODE_A, token: str | None = None) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["X-Commander-Node"] = node_id
        self.session.headers["Authorization"] = f"Bearer {token or TOKENS[node_id]}"

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST to the relay."""
        return self.session.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET from the relay."""
        return self.session.get(self.url + path, timeout=30, **kwargs)

    def send(self, env: MessageEnvelope) -> requests.Response:
        """POST /sync/message."""
        return self.post("/sync/message", json=env.to_wire())

    def send_batch(self, body: dict[str, Any]) -> requests.Response:
        """POST /sync/messages."""
        return self.post("/sync/messages", json=body)

    def query(self, **params: Any) -> dict[str, Any]:
        """GET /query/messages, asserting 200."""
        response = self.get("/query/messages", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()


def db_path(relay: RelayServer) -> Path:
    """The relay's cluster database."""
    return Path(relay.config.relay.data_dir) / "messages" / "cluster_messages.db"


def _select(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one query on the store of data_dir's relay (PostgreSQL or SQLite), read-only."""
    if data_dir in PG_STORES:
        with psycopg.connect(PG_STORES[data_dir], autocommit=True) as pg:
            return pg.execute(sql).fetchall()
    path = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def row_counts(data_dir: Path) -> dict[str, int]:
    """Rows per table and files on disk: what 'nothing was stored' compares."""
    counts = {t: _select(data_dir, f"SELECT COUNT(*) FROM {t}")[0][0] for t in TABLES}
    files_dir = data_dir / "files"
    counts["files_on_disk"] = (
        sum(1 for p in files_dir.rglob("*") if p.is_file()) if files_dir.exists() else 0
    )
    return counts


def stored_msg_ids(data_dir: Path) -> list[str]:
    """Every msg_id in the cluster database, in row order."""
    return [r[0] for r in _select(data_dir, "SELECT msg_id FROM messages ORDER BY id")]


def write_config(root: Path) -> Path:
    """relay.yaml for node-a on 127.0.0.1 and its agents; tests pass --host and --port too."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    for node_id, agent_ids in AGENTS.items():
        for agent_id in agent_ids:
            (root / "agents" / f"{agent_id}.yaml").write_text(
                f'agent_id: "{agent_id}"\nrole: "coder"\nnode_id: "{node_id}"\n'
            )
    (root / "relay.yaml").write_text(
        f'nodes:\n  - id: "{NODE_A}"\n    host: "127.0.0.1"\n    port: 9\n'
        f'    token_sha256: "{sha(TOKENS[NODE_A])}"\n'
        # node-b runs agent-b1, so the topology names it; without a token it never logs in.
        f'  - id: "{NODE_B}"\n    host: "127.0.0.1"\n    port: 9\n'
        "relay:\n  min_free_bytes: 0\n"
    )
    return root / "relay.yaml"


@contextlib.contextmanager
def relay_daemon(config: Path, tmp_path: Path) -> Iterator[Daemon]:
    """`commander-relay serve --config <config>` as a process on 127.0.0.1; must stop with 0."""
    args = ["-m", "relay_app.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", "0", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    daemon = Daemon(args, tmp_path / "relay.log")
    try:
        yield daemon
    finally:
        assert daemon.terminate() == 0
