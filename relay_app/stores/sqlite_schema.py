"""The cluster database schema: named DDL and the one list of migrations.

`MIGRATIONS[n]` takes the database from `PRAGMA user_version` n to n + 1 (see
`runtime.core.sqlite.migrate`). Append new migrations at the end (full-text search,
inbox indexes, ...); never edit one that has shipped.
"""

from __future__ import annotations

# A node cache's columns (id .. synced) plus what the cluster needs to know about a
# message: which node and agent sent it, its priority, its inbox status and when the
# relay stored it. AUTOINCREMENT keeps ids from ever being reused, so the keyset
# cursor of GET /query/messages stays valid across deletes.
CREATE_MESSAGES = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT UNIQUE NOT NULL,
    timestamp REAL NOT NULL,
    task_id TEXT,
    sender TEXT,
    recipient TEXT,
    role TEXT,
    content BLOB NOT NULL,  -- gzip-compressed JSON (runtime.core.envelope.encode_content)
    synced INTEGER NOT NULL DEFAULT 1,  -- a relay row is the synced copy; kept for parity
    node_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    priority TEXT NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('low', 'normal', 'high', 'critical')),
    status TEXT NOT NULL DEFAULT 'unread'
        CHECK (status IN ('unread', 'acknowledged', 'archived')),
    received_at REAL NOT NULL
)
"""

# Migration 1's indexes: one per equality filter of GET /query/messages, when its order
# was the row id. Migration 7 replaced the filter ones with (column, timestamp) indexes.
MESSAGE_INDEXES = (
    "CREATE INDEX idx_messages_task ON messages (task_id)",
    "CREATE INDEX idx_messages_timestamp ON messages (timestamp)",
    "CREATE INDEX idx_messages_agent ON messages (agent_id)",
    "CREATE INDEX idx_messages_node ON messages (node_id)",
    "CREATE INDEX idx_messages_recipient ON messages (recipient)",
    "CREATE INDEX idx_messages_role ON messages (role)",
    "CREATE INDEX idx_messages_priority ON messages (priority)",
    "CREATE INDEX idx_messages_status ON messages (status)",
)

# Batch ids already stored: a repeated batch gets the same ack without touching messages.
CREATE_BATCHES = """
CREATE TABLE batches (
    batch_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    message_count INTEGER NOT NULL,
    received_at REAL NOT NULL
) WITHOUT ROWID
"""

# The last health report of each node (POST /sync/status); `agents` is its JSON list.
CREATE_NODE_STATUS = """
CREATE TABLE node_status (
    node_id TEXT PRIMARY KEY,
    sent_at REAL,
    received_at REAL NOT NULL,
    agents TEXT NOT NULL
)
"""

# Files under <data_dir>/files/<agent_id>/<file_id>; `path` is relative to data_dir.
CREATE_FILES = """
CREATE TABLE files (
    file_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    msg_id TEXT,
    filename TEXT,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    received_at REAL NOT NULL
)
"""

FILE_INDEXES = (
    "CREATE INDEX idx_files_agent ON files (agent_id)",
    "CREATE INDEX idx_files_msg ON files (msg_id)",
)

# One row per message an inbox action changed. By msg_id, not messages.id, and without a
# foreign key: the trail says what happened even to a message later deleted.
CREATE_INBOX_AUDIT = """
CREATE TABLE inbox_audit (
    id INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL,
    action TEXT NOT NULL
        CHECK (action IN ('acknowledge', 'execute', 'archive', 'restore', 'follow_up')),
    user_name TEXT NOT NULL,
    at REAL NOT NULL,
    detail TEXT  -- execute: the follow-up's msg_id; follow_up: the report's
)
"""
INBOX_AUDIT_INDEX = "CREATE INDEX idx_inbox_audit_msg ON inbox_audit (msg_id, id)"

# Operator sessions (relay_app.store_sessions), so a restart or another relay keeps a login.
# By the sha256 of the cookie token: a copy of the database holds no usable cookie.
CREATE_INBOX_SESSIONS = """
CREATE TABLE inbox_sessions (
    token_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires REAL NOT NULL,
    flash TEXT NOT NULL DEFAULT ''  -- the one-time notice of the next page
) WITHOUT ROWID
"""
INBOX_SESSIONS_INDEX = "CREATE INDEX idx_inbox_sessions_expires ON inbox_sessions (expires)"

# What a stored message is written into since migration 7, besides the table itself:
# every index on `messages` (SQLite ends each entry with the rowid, so an index on
# (column, timestamp) gives the shared order (timestamp, id) after an equality on the
# column) and the counter triggers, which keep the badge and the status counts O(1).
ONE_ORDER_INDEXES = (
    "sqlite_autoindex_messages_1",  # msg_id UNIQUE: a repeat is known by it
    "idx_messages_timestamp",  # no filter, or only since/until; the charts
    "idx_messages_recipient",  # mail: a recipient's messages in arrival (id) order
    "idx_messages_task_ts",
    "idx_inbox_agent_ts",
    "idx_inbox_node_ts",
    "idx_inbox_role_ts",
    "idx_inbox_priority_ts",
    "idx_inbox_status_ts",
    "idx_inbox_live",  # the inbox's default view: every message not archived
)
COUNTER_TRIGGERS = ("inbox_count_insert", "inbox_count_update", "inbox_count_delete")
# An insert's one other cost: a lookup that keeps an archived msg_id from being stored again.
ARCHIVE_GUARD = "archived_ids_guard"
# The single-column filter indexes of the id order that migration 7 drops.
ID_ORDER_INDEXES = (
    "idx_messages_task",
    "idx_messages_agent",
    "idx_messages_node",
    "idx_messages_role",
    "idx_messages_priority",
    "idx_messages_status",
)

# The archive (relay_app.store_archive): the manifest of segment files; where each archived
# msg_id lies, with its node and agent so a resend by another one is refused as it is for a
# hot row; the rows restored out of a segment. The trigger drops a resent archived msg_id
# as ON CONFLICT drops a hot one, so nothing is stored twice.
ARCHIVE_TABLES = (
    "CREATE TABLE archive_segments ("
    " id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, rows INTEGER NOT NULL,"
    " size INTEGER NOT NULL, msg_ids_sha256 TEXT NOT NULL, min_ts REAL NOT NULL,"
    " max_ts REAL NOT NULL, frame_index BLOB NOT NULL, created_at REAL NOT NULL)",
    "CREATE TABLE archived_ids (msg_id TEXT PRIMARY KEY, segment_id INTEGER NOT NULL,"
    " frame INTEGER NOT NULL, node_id TEXT NOT NULL, agent_id TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE archive_hidden (segment_id INTEGER NOT NULL, msg_id TEXT NOT NULL,"
    " PRIMARY KEY (segment_id, msg_id)) WITHOUT ROWID",
    "CREATE INDEX idx_archive_hidden_msg ON archive_hidden (msg_id)",
    "INSERT INTO inbox_state (key, value) VALUES ('archive_generation', 0)",
    f"CREATE TRIGGER {ARCHIVE_GUARD} BEFORE INSERT ON messages"
    " WHEN EXISTS (SELECT 1 FROM archived_ids WHERE msg_id = NEW.msg_id)"
    " BEGIN SELECT RAISE(IGNORE); END",
)

# Facts about the database itself. `generation` names this copy of the corpus: a restore
# gives it a new one, and a node that sees it change compares what it holds at once.
CREATE_STORE_META = (
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID"
)
NEW_GENERATION = (
    "INSERT INTO store_meta (key, value) VALUES ('generation', abs(random()))"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

MIGRATIONS: list[tuple[str, ...]] = [
    # 1: the cluster corpus, batch ids, node health reports and files.
    (
        CREATE_MESSAGES,
        *MESSAGE_INDEXES,
        CREATE_BATCHES,
        CREATE_NODE_STATUS,
        CREATE_FILES,
        *FILE_INDEXES,
    ),
    # 2: the /messages inbox (relay_app.inbox). Content is gzip, so triggers cannot index it:
    # `messages_fts` is contentless (rowid = messages.id) and filled by the inbox's indexer up
    # to `inbox_state.fts_indexed_id`. `inbox_counts` keeps per-status totals exact in O(1)
    # for the unread badge, maintained by triggers on every write path. The (column, timestamp)
    # indexes serve the inbox's filters in its order (newest report first) without sorting.
    (
        "CREATE VIRTUAL TABLE messages_fts USING fts5("
        "body, content='', columnsize=0, tokenize='unicode61 remove_diacritics 2')",
        "CREATE TABLE inbox_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO inbox_state (key, value) VALUES ('fts_indexed_id', 0)",
        "CREATE TABLE inbox_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO inbox_counts (status, n) SELECT s.column1, (SELECT COUNT(*) FROM messages"
        " WHERE status = s.column1) FROM (VALUES ('unread'), ('acknowledged'), ('archived')) s",
        "CREATE TRIGGER inbox_count_insert AFTER INSERT ON messages BEGIN"
        " UPDATE inbox_counts SET n = n + 1 WHERE status = NEW.status; END",
        "CREATE TRIGGER inbox_count_update AFTER UPDATE OF status ON messages"
        " WHEN OLD.status != NEW.status BEGIN"
        " UPDATE inbox_counts SET n = n - 1 WHERE status = OLD.status;"
        " UPDATE inbox_counts SET n = n + 1 WHERE status = NEW.status; END",
        "CREATE TRIGGER inbox_count_delete AFTER DELETE ON messages BEGIN"
        " UPDATE inbox_counts SET n = n - 1 WHERE status = OLD.status; END",
        "CREATE INDEX idx_inbox_live ON messages (timestamp) WHERE status != 'archived'",
        "CREATE INDEX idx_inbox_status_ts ON messages (status, timestamp)",
        "CREATE INDEX idx_inbox_agent_ts ON messages (agent_id, timestamp)",
        "CREATE INDEX idx_inbox_node_ts ON messages (node_id, timestamp)",
        "CREATE INDEX idx_inbox_role_ts ON messages (role, timestamp)",
        "CREATE INDEX idx_inbox_priority_ts ON messages (priority, timestamp)",
    ),
    # Migration 3 dropped the single-column indexes on agent, node, role, priority and
    # status as duplicates of the inbox's (column, timestamp) ones. They are not: an index
    # on one column ends in the rowid, so it serves the node API's `WHERE agent_id = ?
    # ORDER BY id DESC` without a sort. Migration 4 puts them back.
    (
        "DROP INDEX idx_messages_agent",
        "DROP INDEX idx_messages_node",
        "DROP INDEX idx_messages_role",
        "DROP INDEX idx_messages_priority",
        "DROP INDEX idx_messages_status",
    ),
    (
        "CREATE INDEX IF NOT EXISTS idx_messages_agent ON messages (agent_id)",
        "CREATE INDEX IF NOT EXISTS idx_messages_node ON messages (node_id)",
        "CREATE INDEX IF NOT EXISTS idx_messages_role ON messages (role)",
        "CREATE INDEX IF NOT EXISTS idx_messages_priority ON messages (priority)",
        "CREATE INDEX IF NOT EXISTS idx_messages_status ON messages (status)",
    ),
    # 5: the inbox's audit trail: who acknowledged, executed, archived or restored what.
    (CREATE_INBOX_AUDIT, INBOX_AUDIT_INDEX),
    # 6: operator sessions.
    (CREATE_INBOX_SESSIONS, INBOX_SESSIONS_INDEX),
    # 7: one order for the node API and the inbox, report time then id, so one index
    # per filter serves both (ONE_ORDER_INDEXES); the id-ordered duplicates go.
    (
        *(f"DROP INDEX IF EXISTS {name}" for name in ID_ORDER_INDEXES),
        "CREATE INDEX IF NOT EXISTS idx_messages_task_ts ON messages (task_id, timestamp)",
    ),
    # 8: the archive's manifest, archived ids and restored rows.
    ARCHIVE_TABLES,
    # 9: refill (relay_app.refill): the database's generation, new on every restore, and
    # each archived id's report time, so digests count archived messages with the hot ones.
    (
        CREATE_STORE_META,
        NEW_GENERATION,
        "ALTER TABLE archived_ids ADD COLUMN timestamp REAL",
        "CREATE INDEX idx_archived_agent_ts ON archived_ids (agent_id, timestamp)",
    ),
]
