"""`commander-relay backup` of a live relay and `commander-relay restore` into a stopped one.

The relay whose backup is taken runs as its own process and keeps ingesting; the two
commands run through `relay_app.cli.main`, as the console script runs them.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from relay_app.cli import main
from relay_app.server import RelayServer
from tests.relay_app.helpers import NodeClient, batch, make_config, message, write_config
from tests.relay_app.test_crash import start_relay
from tests.support import wait_for

BATCH = 20
MESSAGES_BEFORE = 200
DB = Path("messages") / "cluster_messages.db"
NOBODY = 65534


class Writer:
    """A node posting batches until told to stop; the msg_ids the relay acknowledged."""

    def __init__(self, url: str) -> None:
        self.client = NodeClient(url)
        self.acked: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        for n in range(5000):  # bounded: about 100,000 messages at most
            if self.stop.is_set():
                return
            envs = [message(content={"n": n, "pad": "x" * 100}) for _ in range(BATCH)]
            if self.client.send_batch(batch(envs, f"w-{n}")).status_code == 200:
                with self.lock:
                    self.acked.extend(e.msg_id for e in envs)

    def snapshot(self) -> set[str]:
        """What was acknowledged so far."""
        with self.lock:
            return set(self.acked)

    def finish(self) -> None:
        """Stop and wait."""
        self.stop.set()
        self.thread.join(30)
        self.client.close()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `commander-relay ARGS`; its exit status and what it printed (both streams)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def select(database: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of one query, read-only."""
    conn = sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def held_ids(database: Path) -> set[str]:
    """Every msg_id the database holds, hot or archived."""
    rows = select(database, "SELECT msg_id FROM messages UNION ALL SELECT msg_id FROM archived_ids")
    return {str(r[0]) for r in rows}


def generation(database: Path) -> int:
    """The database's generation (store_meta)."""
    return int(select(database, "SELECT value FROM store_meta WHERE key = 'generation'")[0][0])


def integrity(database: Path) -> str:
    """PRAGMA integrity_check's first row."""
    return str(select(database, "PRAGMA integrity_check")[0][0])


def digest(path: Path) -> str:
    """sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A stopped relay's data dir: hot messages, one uploaded file, one archived segment."""
    data = tmp_path / "corpus"
    with RelayServer(make_config(data), host="127.0.0.1", port=0) as relay:
        client = NodeClient(relay.url)
        for n in range(3):
            body = batch([message(content={"n": n}) for _ in range(BATCH)], f"c-{n}")
            assert client.send_batch(body).status_code == 200
        files = {"file": ("r.bin", b"x" * 1000, "application/octet-stream")}
        assert client.post("/sync/files", data={"agent_id": "agent-1"}, files=files).ok
        client.close()
    time.sleep(0.1)  # older than --after-days below: every message is due
    code, said = cli(capsys, "archive", "--data-dir", str(data), "--after-days", "0.000001")
    assert code == 0, said
    segments = list((data / "archive").glob("*.jsonl.zst"))
    assert segments, said
    return data


def test_a_backup_of_a_live_relay_restores_every_message_acked_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = write_config(tmp_path / "config"), tmp_path / "data"
    relay = start_relay(config, data, tmp_path / "relay.log")
    writer = Writer(relay.url)
    writer.thread.start()
    try:
        wait_for(lambda: len(writer.snapshot()) >= MESSAGES_BEFORE, timeout=30, what="acks")
        before = writer.snapshot()
        code, said = cli(capsys, "backup", str(tmp_path / "backup"), "--data-dir", str(data))
        # The relay went on ingesting: the backup never stopped its writes for long.
        wait_for(lambda: len(writer.snapshot()) > len(before), timeout=10, what="acks after")
    finally:
        writer.finish()
        assert relay.terminate() == 0
    assert code == 0, said
    assert " messages, " in said

    fresh = tmp_path / "fresh"
    code, said = cli(capsys, "restore", str(tmp_path / "backup"), "--data-dir", str(fresh))
    assert code == 0, said
    assert integrity(fresh / DB) == "ok"
    assert before <= held_ids(fresh / DB)
    assert generation(fresh / DB) != generation(data / DB)
    restored = start_relay(config, fresh, tmp_path / "restored.log")
    try:
        client = NodeClient(restored.url)
        for msg_id in sorted(before)[:20]:
            assert client.get(f"/query/messages/{msg_id}").status_code == 200
        assert client.query(limit=1)["total"] >= len(before)
        client.close()
    finally:
        assert restored.terminate() == 0


def test_restore_is_refused_while_a_relay_runs_and_a_second_relay_too(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, backup = write_config(tmp_path / "config"), tmp_path / "backup"
    assert cli(capsys, "backup", str(backup), "--data-dir", str(corpus))[0] == 0
    relay = start_relay(config, corpus, tmp_path / "relay.log")
    try:
        inode = (corpus / DB).stat().st_ino
        code, said = cli(capsys, "restore", str(backup), "--data-dir", str(corpus))
        assert code == 2, said
        assert "stop the relay first" in said
        assert "relay.lock" in said
        assert (corpus / DB).stat().st_ino == inode
        assert not list((corpus / "messages").glob("*.restoring*"))
        assert not list((corpus / "messages").glob("*before-restore*"))
        second = subprocess.run(
            [sys.executable, "-m", "relay_app.cli", "serve", "--config", str(config),
             "--host", "127.0.0.1", "--port", "0", "--data-dir", str(corpus)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1, second.stderr
        assert "relay.lock" in second.stderr
    finally:
        assert relay.terminate() == 0


def test_a_damaged_source_fails_backup_and_keeps_the_earlier_backup(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup"
    assert cli(capsys, "backup", str(backup), "--data-dir", str(corpus))[0] == 0
    good = digest(backup / DB)
    database = corpus / DB
    (root,) = select(database, "SELECT rootpage FROM sqlite_master WHERE name = 'idx_files_agent'")
    with database.open("r+b") as f:  # an index the counts never read: the copy is made
        f.seek((int(str(root[0])) - 1) * 4096)
        f.write(b"\xff" * 8)
    code, said = cli(capsys, "backup", str(backup), "--data-dir", str(corpus))
    assert code == 1, said
    assert "verification failed, nothing replaced" in said
    size = database.stat().st_size
    with database.open("r+b") as f:
        f.truncate(size // 2)
    code, said = cli(capsys, "backup", str(backup), "--data-dir", str(corpus))
    assert code == 1, said
    assert "malformed" in said
    assert digest(backup / DB) == good
    assert not (backup / "messages" / "cluster_messages.db.tmp").exists()


def test_a_missing_segment_fails_backup_and_restore_changes_nothing(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup, target = tmp_path / "backup", tmp_path / "target"
    assert cli(capsys, "backup", str(backup), "--data-dir", str(corpus))[0] == 0
    assert cli(capsys, "backup", str(target), "--data-dir", str(corpus))[0] == 0
    segment = next((backup / "archive").glob("*.jsonl.zst"))
    segment.unlink()
    (corpus / "archive" / segment.name).unlink()
    code, said = cli(capsys, "backup", str(backup), "--data-dir", str(corpus))
    assert code == 1, said
    assert f"segment {backup / 'archive' / segment.name} is missing" in said

    before = digest(target / DB)
    code, said = cli(capsys, "restore", str(backup), "--data-dir", str(target))
    assert code == 1, said
    assert "nothing changed" in said
    assert segment.name in said
    assert digest(target / DB) == before
    assert sorted(p.name for p in (target / "messages").iterdir()) == ["cluster_messages.db"]
    with (backup / DB).open("r+b") as f:  # and a damaged database
        f.seek(8192)
        f.write(b"\x00" * 8192)
    code, said = cli(capsys, "restore", str(backup), "--data-dir", str(target))
    assert code == 1, said
    assert digest(target / DB) == before


def test_restore_keeps_the_old_database_aside_with_its_wal_and_leaves_none_beside_the_new(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup"
    assert cli(capsys, "backup", str(backup), "--data-dir", str(corpus))[0] == 0
    _write_and_die(corpus / DB)  # leaves a WAL holding a commit, as kill -9 would
    assert (corpus / "messages" / "cluster_messages.db-wal").stat().st_size > 0
    code, said = cli(capsys, "restore", str(backup), "--data-dir", str(corpus))
    assert code == 0, said
    names = sorted(p.name for p in (corpus / "messages").iterdir())
    kept = [n for n in names if n.startswith("cluster_messages.db.before-restore-")]
    assert "cluster_messages.db" in names
    assert not {"cluster_messages.db-wal", "cluster_messages.db-shm"} & set(names)
    assert len(kept) == 3, names  # the database, its WAL and its index
    assert integrity(corpus / DB) == "ok"
    assert select(corpus / DB, "SELECT COUNT(*) FROM node_status WHERE node_id = 'x'") == [(0,)]
    old = corpus / "messages" / min(kept, key=len)
    assert select(old, "SELECT COUNT(*) FROM node_status WHERE node_id = 'x'") == [(1,)]
    assert generation(corpus / DB) != generation(backup / DB)


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another user needs root")
def test_restore_run_as_root_hands_what_it_made_to_the_data_directorys_owner(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup, target = tmp_path / "backup", tmp_path / "target"
    assert cli(capsys, "backup", str(backup), "--data-dir", str(corpus))[0] == 0
    target.mkdir()
    os.chown(target, NOBODY, NOBODY)  # the relay's own user owns its data directory
    code, said = cli(capsys, "restore", str(backup), "--data-dir", str(target))
    assert code == 0, said
    made = [p for part in ("messages", "archive", "files") for p in (target / part).rglob("*")]
    assert len(made) >= 4, made
    owners = {p: p.stat().st_uid for p in [*made, target / "relay.lock"]}
    assert set(owners.values()) == {NOBODY}, owners


def test_a_relay_on_postgresql_is_pointed_to_pg_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "config")
    with config.open("a") as f:
        f.write('  store: "postgresql://commander@127.0.0.1:9/commander"\n')
    for command in ("backup", "restore"):
        code, said = cli(capsys, command, str(tmp_path / "backup"), "--config", str(config))
        assert code == 2, said
        assert "pg_dump or pg_basebackup" in said
    assert not (tmp_path / "backup").exists()


def _write_and_die(database: Path) -> None:
    """Commit a row into the WAL from a process that exits without closing (no checkpoint)."""
    script = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
        'c.execute("INSERT INTO node_status (node_id, received_at, agents)'
        " VALUES ('x', 1, '[]')\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(database)], check=True, timeout=30)
