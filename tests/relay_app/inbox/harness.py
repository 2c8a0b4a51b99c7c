"""A real relay with the inbox on 127.0.0.1 over SQLite in tmp_path, and an operator's client."""

from __future__ import annotations

import hashlib
import re
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bottle
import requests

from relay_app.app import create_app
from relay_app.diskspace import SpaceGate
from relay_app.inbox import inbox_of
from relay_app.inbox.service import Inbox
from relay_app.ingest import Ingest
from relay_app.passwords import hash_password
from relay_app.store import MessageStore
from relay_app.stores import open_store
from relay_app.stores.sqlite import SqliteStore
from runtime.core.config import ClusterConfig, NodeEntry, RelaySettings
from runtime.core.envelope import MessageEnvelope
from runtime.core.wsgi import ServerHandle, serve_in_thread

OPERATOR = "operator"
PASSWORD = "correct horse battery staple"
# Hashing with scrypt's full cost in every test would cost seconds: hash once per run.
PASSWORD_HASH = hash_password(PASSWORD)
NODES = {"node-a": "token-a-0123456789abcdef", "node-b": "token-b-0123456789abcdef"}
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
# Search box inputs that must never make a page fail.
ODD_SEARCHES = [
    "",
    " ",
    '"',
    '""',
    '"unclosed phrase',
    "AND",
    "OR",
    "NOT",
    "a AND",
    "OR b",
    "-",
    "--",
    "-zanzibar",
    "e-mail",
    "zanzibar-logistics",
    "zan*",
    "*",
    "(",
    ")",
    "NEAR(a b)",
    "col:zanzibar",
    "body:zanzibar",
    "^zanzibar",
    "'; DROP TABLE messages; --",
    "%",
    "\\",
    "日本語",
    "zanzibar" * 100,
    "a " * 300,
    "\x00",
]


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Relay:
    """A running relay with the inbox."""

    url: str
    store: MessageStore
    ingest: Ingest
    app: bottle.Bottle
    inbox: Inbox
    http: ServerHandle
    clock: Clock
    nodes: dict[str, requests.Session] = field(default_factory=dict)

    @property
    def sqlite_path(self) -> Path:
        """The database file (SQLite relays only)."""
        assert isinstance(self.store, SqliteStore), "not a SQLite relay"
        return self.store.path

    def node(self, node_id: str = "node-a") -> requests.Session:
        """A keep-alive session authenticated as a node."""
        if node_id not in self.nodes:
            session = requests.Session()
            session.headers["X-Commander-Node"] = node_id
            session.headers["Authorization"] = f"Bearer {NODES[node_id]}"
            self.nodes[node_id] = session
        return self.nodes[node_id]

    def send(
        self, node_id: str = "node-a", agent_id: str = "agent-1", **fields: Any
    ) -> MessageEnvelope:
        """Store a message through POST /sync/message, as a node would."""
        fields.setdefault("content", {"text": "hello"})
        at = float(fields.pop("timestamp", time.time()))
        env = MessageEnvelope.new(agent_id=agent_id, node_id=node_id, clock=lambda: at, **fields)
        response = self.node(node_id).post(
            f"{self.url}/sync/message", json=env.to_wire(), timeout=10
        )
        assert response.status_code == 200, response.text
        return env

    def send_many(self, envs: list[MessageEnvelope], node_id: str = "node-a") -> None:
        """Store messages in one batch."""
        body = {
            "batch_id": f"b-{time.time_ns()}",
            "node_id": node_id,
            "messages": [e.to_wire() for e in envs],
        }
        response = self.node(node_id).post(f"{self.url}/sync/messages", json=body, timeout=30)
        assert response.status_code == 200, response.text

    def report(self, node_id: str, agents: list[dict[str, Any]]) -> None:
        """POST /sync/status for a node."""
        body = {"node_id": node_id, "sent_at": time.time(), "agents": agents}
        response = self.node(node_id).post(f"{self.url}/sync/status", json=body, timeout=10)
        assert response.status_code == 200, response.text

    def indexed(self, timeout: float = 5.0) -> None:
        """Wait until the full-text index has caught up with every stored message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.inbox.writer.index_soon()
            if self.store.inbox.unindexed(1) is None:
                return
            time.sleep(0.05)
        raise AssertionError("the full-text index did not catch up")

    def operator(self, password: str = PASSWORD) -> requests.Session:
        """A logged-in operator's HTTP session."""
        session = requests.Session()
        response = session.post(
            f"{self.url}/messages/login",
            data={"user": OPERATOR, "password": password, "next": "/messages"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return session

    def csrf(self, session: requests.Session) -> str:
        """The CSRF token from the inbox page."""
        found = CSRF_RE.search(session.get(f"{self.url}/messages", timeout=10).text)
        assert found is not None
        return found.group(1)

    def stop(self) -> None:
        """Stop in reverse order of start."""
        for session in self.nodes.values():
            session.close()
        self.http.stop()
        self.app.close()
        self.ingest.stop()
        self.store.close()


def start_relay(
    data_dir: Path,
    *,
    webhook: str | None = None,
    password_hash: str | None = PASSWORD_HASH,
    gate: SpaceGate | None = None,
    trusted_proxies: tuple[str, ...] = (),
    ssl_context: ssl.SSLContext | None = None,
    store: str = "sqlite",
) -> Relay:
    """Start store, IngestActor, app (with the inbox) and server on 127.0.0.1.

    `store` is relay.store: "sqlite" under data_dir, or a postgresql:// URL."""
    nodes = tuple(
        NodeEntry(
            id=n, host="127.0.0.1", port=9, token_sha256=hashlib.sha256(t.encode()).hexdigest()
        )
        for n, t in NODES.items()
    )
    settings = RelaySettings(
        data_dir=str(data_dir),
        min_free_bytes=0,
        operator_user=OPERATOR,
        operator_password_hash=password_hash,
        execute_webhook=webhook,
        allow_any_agent=True,  # the inbox tests write for whatever agent they like
        trusted_proxies=trusted_proxies,
        store=store,
    )
    config = ClusterConfig(nodes=nodes, relay=settings, agents=(), config_dir=str(data_dir))
    opened = open_store(settings)
    ingest = Ingest.start(opened)
    # Unless the test brings its own gate, a disk with room to spare whatever this one has.
    gate = gate or SpaceGate(lambda: 100 * 1024**3, settings.min_free_bytes)
    app = create_app(opened, config, ingest=ingest, gate=gate)
    clock = Clock()
    inbox = inbox_of(app)
    inbox.clock = clock
    http = serve_in_thread(app, "127.0.0.1", 0, name="test-relay", ssl_context=ssl_context)
    return Relay(http.url, opened, ingest, app, inbox, http, clock)
