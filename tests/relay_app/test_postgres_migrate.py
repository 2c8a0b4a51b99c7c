"""`commander-relay migrate` moves a SQLite corpus to PostgreSQL: every row and id kept,
idempotent, resumable after a kill, verified at the end (issue 15 item 7)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from relay_app.cli import main
from relay_app.store import FileRecord, StoreFile, StoreMessages, StoreStatus
from relay_app.store_inbox import Audit, SetStatuses
from relay_app.store_sessions import OpenSession, SessionRecord
from relay_app.stores.migrate import (
    MigrateInterrupted,
    migrate_corpus,
    open_source,
    open_target,
)
from relay_app.stores.postgres import PostgresStore, PostgresWriter, search_text
from relay_app.stores.sqlite import SqliteStore
from tests.relay_app.store_contract.corpus import NODE_A, NODE_B, T0, row
from tests.support.procs import REPO

MESSAGES = 300
PER_BATCH = 20
COLUMNS = (
    "id, msg_id, timestamp, task_id, sender, recipient, role, content, synced, node_id,"
    " agent_id, priority, status, received_at"
)
KILL_AFTER_ROWS = 60
MAIL_TO = "agent-2"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A relay data directory whose corpus went in through the real SQLite writer."""
    data_dir = tmp_path / "relay"
    store = SqliteStore(data_dir, synchronous="OFF")
    writer = store.open_writer()
    for start in range(0, MESSAGES, PER_BATCH):
        node = NODE_A if start % (2 * PER_BATCH) else NODE_B
        rows = tuple(
            row(
                T0 + i,
                node=node,
                msg_id=f"m-{i}",
                content={"text": f"word{i} caf\u00e9"},
                recipient=MAIL_TO if i % 3 == 0 else None,
            )
            for i in range(start, start + PER_BATCH)
        )
        writer.write([StoreMessages(node, rows, f"b-{start}")], T0 + start)
    record = FileRecord("f-1", "agent-1", NODE_A, "m-1", "a.txt", 3, "ab" * 32, "files/a/f-1")
    writer.write(
        [StoreStatus(NODE_A, T0, ({"agent_id": "agent-1"},)), StoreStatus(NODE_B, None, ()),
         StoreFile(record),
         SetStatuses(("m-3", "m-4"), "archived", ("unread",), Audit("archive", "op", T0)),
         OpenSession("ab" * 32, SessionRecord("op", "csrf", T0 + 3600), T0, 10)],
        T0 + MESSAGES,
    )  # fmt: skip
    writer.close()
    store.close()
    return data_dir


def migrate(source: Path, dsn: str, *extra: str) -> int:
    return main(["migrate", "--from", str(source), "--to", dsn, *extra])


def sqlite_rows(source: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(source / "messages" / "cluster_messages.db")
    try:
        return [tuple(bytes(v) if isinstance(v, bytes) else v for v in r) for r in
                conn.execute(query)]  # fmt: skip
    finally:
        conn.close()


def pg_rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return list(conn.execute(query).fetchall())


def assert_same_corpus(source: Path, dsn: str) -> None:
    for query in (
        f"SELECT {COLUMNS} FROM messages ORDER BY id",
        "SELECT * FROM batches ORDER BY batch_id",
        "SELECT * FROM node_status ORDER BY node_id",
        "SELECT * FROM files ORDER BY file_id",
        "SELECT * FROM inbox_audit ORDER BY id",
        "SELECT * FROM inbox_sessions ORDER BY token_sha256",
    ):
        assert pg_rows(dsn, query) == sqlite_rows(source, query), query


def test_a_corpus_migrates_with_every_row_id_and_search_text(
    source: Path, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(source, postgres_dsn) == 0
    summary = capsys.readouterr().out
    assert f"copied messages {MESSAGES}, batches {MESSAGES // PER_BATCH}" in summary
    assert "node_status 2, files 1" in summary
    assert "verified: counts equal" in summary
    assert "inbox_audit 2, inbox_sessions 1" in summary
    assert "not copied" not in summary
    assert_same_corpus(source, postgres_dsn)
    content = sqlite_rows(source, "SELECT content FROM messages WHERE msg_id = 'm-7'")[0][0]
    with psycopg.connect(postgres_dsn) as conn:
        same = conn.execute(
            "SELECT search = to_tsvector('simple', %s) FROM messages WHERE msg_id = 'm-7'",
            (search_text(content),),
        ).fetchone()
        found = conn.execute(
            "SELECT msg_id FROM messages WHERE search @@ to_tsquery('simple', 'word7 & cafe')"
        ).fetchall()
    assert same == (True,)
    assert found == [("m-7",)]


def test_running_it_twice_changes_nothing(
    source: Path, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(source, postgres_dsn) == 0
    assert migrate(source, postgres_dsn) == 0
    assert "copied messages 0, batches 0, node_status 0, files 0" in capsys.readouterr().out
    assert_same_corpus(source, postgres_dsn)


def test_a_migration_killed_half_way_completes_when_run_again(
    source: Path, postgres_dsn: str
) -> None:
    args = ["migrate", "--from", str(source), "--to", postgres_dsn]
    slow = [*args, "--chunk-rows", "10", "--pause-s", "0.05"]
    proc = subprocess.Popen([sys.executable, "-m", "relay_app.cli", *slow], cwd=REPO)
    try:
        copied = wait_for_rows(postgres_dsn, proc)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    assert KILL_AFTER_ROWS <= copied < MESSAGES
    left = pg_rows(postgres_dsn, "SELECT COUNT(*) FROM messages")[0][0]
    assert left < MESSAGES  # killed before the end: the run below has to resume
    done = subprocess.run([sys.executable, "-m", "relay_app.cli", *args], cwd=REPO, check=False)
    assert done.returncode == 0
    assert_same_corpus(source, postgres_dsn)


def wait_for_rows(dsn: str, proc: subprocess.Popen[bytes]) -> int:
    """Poll the target until the migration has committed some chunks; their count."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            count = pg_rows(dsn, "SELECT COUNT(*) FROM messages")[0][0]
        except psycopg.errors.UndefinedTable:
            count = 0
        if count >= KILL_AFTER_ROWS:
            return int(count)
        time.sleep(0.01)
    raise AssertionError(f"no progress to kill (exit {proc.poll()})")


def test_an_insert_after_migration_gets_an_id_past_the_old_max(
    source: Path, postgres_dsn: str
) -> None:
    assert migrate(source, postgres_dsn) == 0
    old_max = pg_rows(postgres_dsn, "SELECT MAX(id) FROM messages")[0][0]
    writer = PostgresWriter(postgres_dsn)
    try:
        writer.write([StoreMessages(NODE_A, (row(T0, msg_id="m-new"),))], T0)
    finally:
        writer.close()
    new_id = pg_rows(postgres_dsn, "SELECT id FROM messages WHERE msg_id = 'm-new'")[0][0]
    assert new_id == old_max + 1


def test_mail_cursors_status_counts_and_logins_carry_over(source: Path, postgres_dsn: str) -> None:
    """A node's mail cursor from the SQLite relay resumes at the same row on PostgreSQL,
    and mail stored after the move follows every copied row."""
    assert migrate(source, postgres_dsn) == 0
    sqlite_store, pg_store = SqliteStore(source), PostgresStore(postgres_dsn)
    try:
        mail = sqlite_store.mail_after([MAIL_TO], 0, 1000)
        cursor = mail[10][0]
        rest = pg_store.mail_after([MAIL_TO], cursor, 1000)
        assert [m["msg_id"] for _, m in rest] == [m["msg_id"] for _, m in mail[11:]]
        writer = pg_store.open_writer()
        writer.write([StoreMessages(NODE_A, (row(T0, msg_id="m-new", recipient=MAIL_TO),))], T0)
        writer.close()
        deadline = time.monotonic() + 10
        while not (after := pg_store.mail_after([MAIL_TO], mail[-1][0], 10)):
            assert time.monotonic() < deadline  # another test's transaction holds the horizon
            time.sleep(0.05)
        assert [m["msg_id"] for _, m in after] == ["m-new"]
        counts = sqlite_store.inbox.status_counts()
        counts["unread"] += 1
        assert pg_store.inbox.status_counts() == counts
        assert pg_store.sessions.find("ab" * 32, T0) is not None
    finally:
        sqlite_store.close()
        pg_store.close()


def test_a_target_that_differs_is_named_and_exits_1(
    source: Path, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(source, postgres_dsn) == 0
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("UPDATE messages SET msg_id = 'm-other' WHERE msg_id = 'm-3'")
        conn.execute("DELETE FROM batches WHERE batch_id = 'b-0'")  # copied again
        conn.execute("INSERT INTO node_status VALUES ('node-z', NULL, 1.0, '[]')")
    capsys.readouterr()
    assert migrate(source, postgres_dsn) == 1
    out = capsys.readouterr().out
    assert "copied messages 0, batches 1, node_status 0, files 0" in out
    assert "node_status: 2 rows in the source, 3 in the target" in out
    assert "messages: the msg_ids in id order differ" in out


@pytest.mark.parametrize("kind", ["missing", "not sqlite", "not a relay database", "bad url"])
def test_a_bad_source_or_target_exits_2(
    kind: str, tmp_path: Path, postgres_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, dsn = tmp_path / "nothing.db", postgres_dsn
    if kind == "not sqlite":
        path.write_bytes(b"this is not a database, just some bytes" * 100)
    elif kind == "not a relay database":
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    elif kind == "bad url":
        SqliteStore(tmp_path / "relay").close()
        path, dsn = tmp_path / "relay", "postgresql://127.0.0.1:1/none?connect_timeout=2"
    assert migrate(path, dsn) == 2
    err = capsys.readouterr().err
    assert ("--to" if kind == "bad url" else "--from") in err


def test_a_target_that_is_not_a_postgresql_url_exits_2(
    source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrate(source, "mysql://somewhere/db") == 2
    assert "expected a postgresql:// URL" in capsys.readouterr().err


def test_a_target_lost_during_the_copy_says_to_run_it_again(
    source: Path, postgres_dsn: str
) -> None:
    target = open_target(postgres_dsn)
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (target.info.backend_pid,))
    src = open_source(source)
    try:
        with pytest.raises(MigrateInterrupted, match="run it again to resume"):
            migrate_corpus(src, target)
    finally:
        src.close()
        target.close()
