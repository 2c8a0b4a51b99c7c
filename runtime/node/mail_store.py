"""The node's mail: what the relay holds for this node's agents, and how far each has read.

`<data_dir>/mail/mail.db` keeps every message received (by msg_id, once) in arrival
order (`seq`), the relay's cursor (stored in the same transaction as the messages it
covers, so a crash neither skips nor repeats a poll), and each agent's acknowledged
`seq`. Delivery is at-least-once: a batch handed out but not yet acknowledged (by asking
for the next one, or `ack`) is handed out again after a restart of its reader; the
msg_id is the key to drop a repeat.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from runtime.core.config import AgentConfig
from runtime.core.park import Bell, long_poll
from runtime.core.sqlite import connect, migrate, transaction

MIGRATIONS = (
    (
        "CREATE TABLE mail (seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT UNIQUE NOT NULL,"
        " recipient TEXT NOT NULL, message BLOB NOT NULL)",
        "CREATE INDEX idx_mail_recipient ON mail (recipient, seq)",
        "CREATE TABLE cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    ),
)
RELAY_CURSOR = "relay"
SET_CURSOR = (
    "INSERT INTO cursors (name, value) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)"
)
Mail = list[tuple[int, dict[str, Any]]]


def mail_path(data_dir: str | Path) -> Path:
    """Where a node keeps its mail."""
    return Path(data_dir) / "mail" / "mail.db"


class MailStore:
    """Received mail and cursors; one connection shared by the poller and the readers."""

    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        """Open (or create) the database; `bell` rings when new mail is stored."""
        self._conn: sqlite3.Connection | None = connect(
            path, synchronous=synchronous, check_same_thread=False
        )
        migrate(self._conn, MIGRATIONS)
        self._lock = threading.Lock()
        self.bell = Bell()

    def relay_cursor(self) -> int:
        """The relay row id past which the next poll asks."""
        return self._cursor(RELAY_CURSOR)

    def acked(self, agent_id: str) -> int:
        """The last `seq` the agent acknowledged."""
        return self._cursor(f"agent:{agent_id}")

    def store(self, messages: Sequence[dict[str, Any]], relay_cursor: int) -> int:
        """Keep new messages and the relay's cursor in one transaction; how many were new."""
        rows = [(m["msg_id"], m.get("recipient") or "", orjson.dumps(m)) for m in messages]
        with self._lock:
            conn = self._open()
            with transaction(conn):
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO mail (msg_id, recipient, message) VALUES (?,?,?)", rows
                )
                new = conn.total_changes - before
                conn.execute(SET_CURSOR, (RELAY_CURSOR, relay_cursor))
        if new:
            self.bell.ring()
        return new

    def ack(self, agent_id: str, seq: int) -> None:
        """Mark the agent's mail up to `seq` read (never backwards, never past what exists)."""
        with self._lock:
            conn = self._open()
            with transaction(conn):
                top = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM mail").fetchone()[0]
                conn.execute(SET_CURSOR, (f"agent:{agent_id}", min(seq, int(top))))

    def after(self, recipients: Sequence[str], seq: int, limit: int) -> Mail:
        """Up to `limit` (seq, message) to any of `recipients` past `seq`, oldest first."""
        marks = ",".join("?" * len(recipients))
        sql = (
            f"SELECT seq, message FROM mail WHERE recipient IN ({marks}) AND seq > ?"
            " ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._open().execute(sql, [*recipients, seq, limit]).fetchall()
        return [(int(s), orjson.loads(m)) for s, m in rows]

    def close(self) -> None:
        """Close the connection; later calls raise."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _cursor(self, name: str) -> int:
        with self._lock:
            row = self._open().execute("SELECT value FROM cursors WHERE name = ?", (name,))
            found = row.fetchone()
        return int(found[0]) if found else 0

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("the mail store is closed")
        return self._conn


def recipients_of(agent: AgentConfig) -> tuple[str, ...]:
    """Whom an agent's mail is addressed to: its id, or its role."""
    return tuple(dict.fromkeys((agent.agent_id, agent.role)))


def next_mail(
    store: MailStore,
    agent: AgentConfig,
    environ: dict[str, Any],
    wait: float,
    limit: int,
    after: int | None = None,
) -> Mail | None:
    """Acknowledge up to `after` (if given), then the agent's mail past what it acknowledged,
    waiting up to `wait` seconds for some; None when parked (see runtime.core.park)."""
    if after is not None:
        store.ack(agent.agent_id, after)
    start = store.acked(agent.agent_id)
    recipients = recipients_of(agent)
    return long_poll(
        environ, store.bell, wait, lambda: store.after(recipients, start, limit), _empty
    )


def _empty(mail: Mail) -> bool:
    return not mail
