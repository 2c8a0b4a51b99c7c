"""A store with its archive, as the archive tests drive it: writes, archivers, and where
each message is (hot, archived, or both, which must never happen)."""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from relay_app.archive.matching import ArchiveQuery
from relay_app.archive.mover import Archiver, archive_dir, commit_with
from relay_app.archive.reader import ArchiveReader, Order
from relay_app.archive.segment import SUFFIX
from relay_app.archive.tiered import TieredStore, with_archive
from relay_app.server import RelayServer
from relay_app.store import MessageRow, StoreMessages, StoreWriter
from relay_app.store_archive import ArchiveStore
from relay_app.store_inbox import SetStatuses
from relay_app.stores.sqlite import SqliteStore
from relay_app.validate import message_row
from runtime.core.config import ClusterConfig
from runtime.core.envelope import MessageEnvelope
from tests.relay_app.helpers import NODE_A, NodeClient, make_config
from tests.relay_app.inbox.harness import OPERATOR, PASSWORD, PASSWORD_HASH

T_OLD = 1_600_000_000.0  # report and receipt times of 2020: past any age limit
DAY_S = 86400.0
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def relay_config(data_dir: Path) -> ClusterConfig:
    """Two nodes with tokens, an operator who may log in, age archiving at its default;
    commits not fsynced (NORMAL in WAL): these tests are about the archive's own fsyncs."""
    return make_config(data_dir, operator_user=OPERATOR, operator_password_hash=PASSWORD_HASH,
                       synchronous="NORMAL")  # fmt: skip


def row(ts: float, *, node: str = NODE_A, agent: str = "agent-1", **fields: Any) -> MessageRow:
    """One valid message row as the door makes it, reported at `ts`."""
    fields.setdefault("content", {"text": "hello"})
    env = MessageEnvelope.new(agent_id=agent, node_id=node, clock=lambda: ts, **fields)
    return message_row(env.to_wire(), node)


def envelope(
    ts: float, *, node: str = NODE_A, agent: str = "agent-1", **fields: Any
) -> MessageEnvelope:
    """A fresh envelope reported at `ts`."""
    fields.setdefault("content", {"text": "hello"})
    return MessageEnvelope.new(agent_id=agent, node_id=node, clock=lambda: ts, **fields)


@dataclass
class Tier:
    """A tiered store on a data directory, a writer of its own, and archivers on it."""

    data_dir: Path
    store: TieredStore
    writer: StoreWriter
    server: RelayServer | None = None
    clients: list[requests.Session] = field(default_factory=list)

    @classmethod
    def open(cls, data_dir: Path) -> Tier:
        """Open (or create) the SQLite store under data_dir, with its archive."""
        store = with_archive(SqliteStore(data_dir, synchronous="OFF"), data_dir)
        assert isinstance(store, TieredStore)
        return cls(data_dir, store, store.open_writer())

    @classmethod
    def beside(cls, server: RelayServer) -> Tier:
        """The running relay's store, and a second writer on it (the CLI's way)."""
        store = server.store
        assert isinstance(store, TieredStore)
        return cls(Path(server.config.relay.data_dir), store, store.open_writer(), server)

    @property
    def archive(self) -> ArchiveStore:
        """The store's archive tables."""
        assert self.store.archive is not None
        return self.store.archive

    @property
    def directory(self) -> Path:
        """Where the segments live."""
        return archive_dir(self.data_dir)

    @property
    def url(self) -> str:
        """The relay's URL."""
        assert self.server is not None
        return self.server.url

    def put(self, rows: list[MessageRow], received_at: float | None = None) -> None:
        """Store rows in one write, received at `received_at` (now by default)."""
        at = time.time() if received_at is None else received_at
        self.writer.write([StoreMessages(rows[0].node_id, tuple(rows))], at)

    def mark_archived(self, *msg_ids: str) -> None:
        """What the inbox's Archive action writes."""
        op = SetStatuses(msg_ids, "archived", ("unread", "acknowledged"))
        self.writer.write([op], time.time())

    def archiver(self, after_days: float = 0, **kwargs: Any) -> Archiver:
        """An archiver on this store's archive directory, writing through this writer."""
        commit = commit_with(self.writer)
        kwargs.setdefault("pause_s", 0.0)  # the pause spares a live relay; tests have none
        return Archiver(self.store, commit, self.directory, after_days=after_days, **kwargs)

    def reader(self) -> ArchiveReader:
        """A new reader of the archive (nothing remembered from earlier reads)."""
        return ArchiveReader(self.archive, self.directory)

    def hot_ids(self) -> list[str]:
        """Every msg_id of the hot table, read from the file."""
        return hot_ids(self.data_dir)

    def archived_ids(self) -> list[str]:
        """Every msg_id the archive shows (restored ones left out)."""
        return [r["msg_id"] for r in self.reader().scan(ArchiveQuery(), Order())]

    def places(self) -> Counter[str]:
        """How many visible places hold each msg_id: hot and archived together."""
        return Counter(self.hot_ids() + self.archived_ids())

    def segment_files(self) -> set[str]:
        """Every file of the archive directory but its lock."""
        return {p.name for p in self.directory.iterdir() if not p.name.startswith(".")}

    def recorded_files(self) -> set[str]:
        """The files the manifest names."""
        return {s.name + SUFFIX for s in self.archive.manifest().segments}

    def node(self, node_id: str = NODE_A) -> NodeClient:
        """An authenticated node client of the relay."""
        client = NodeClient(self.url, node_id)
        self.clients.append(client.session)
        return client

    def operator(self) -> tuple[requests.Session, str]:
        """A logged-in operator's session and its CSRF token."""
        session = requests.Session()
        self.clients.append(session)
        response = session.post(
            f"{self.url}/messages/login",
            data={"user": OPERATOR, "password": PASSWORD, "next": "/messages"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        found = CSRF_RE.search(session.get(f"{self.url}/messages", timeout=10).text)
        assert found is not None
        return session, found.group(1)

    def index_all(self) -> None:
        """Bring the full-text index up to date through this writer, as the indexer does."""
        while (chunk := self.store.inbox.unindexed(1000)) is not None:
            self.writer.write([chunk.entries()], time.time())

    def lookup(self, msg_id: str) -> dict[str, Any]:
        """GET /query/messages/<msg_id> as node-a, which must answer 200."""
        response = self.node().get(f"/query/messages/{msg_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def indexed(self, timeout: float = 5.0) -> None:
        """Wait until the full-text index holds every hot message (the relay's indexer)."""
        deadline = time.monotonic() + timeout
        while self.store.inbox.unindexed(1) is not None:
            assert time.monotonic() < deadline, "the full-text index did not catch up"
            time.sleep(0.05)

    def close(self) -> None:
        """Close the clients, the writer, and the store unless a relay owns it."""
        for session in self.clients:
            session.close()
        self.writer.close()
        if self.server is None:
            self.store.close()


def hot_ids(data_dir: Path) -> list[str]:
    """Every msg_id of the hot table under data_dir, read-only."""
    path = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT msg_id FROM messages ORDER BY id")]
    finally:
        conn.close()
