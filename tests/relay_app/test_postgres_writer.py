"""The PostgreSQL writer answers as the SQLite one does, stores each msg_id once under
concurrent writers, and its migrations run once (issue 15, items 1 and 2)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest

from relay_app.errors import BadRequest, Conflict, StoreUnavailable
from relay_app.store import (
    FileRecord,
    MessageRow,
    StoreFile,
    StoreMessages,
    StoreStatus,
    StoreWriter,
    WriteOp,
    WriteResult,
)
from relay_app.stores.postgres import PostgresStore, PostgresWriter, search_text
from relay_app.stores.postgres_schema import MIGRATIONS
from relay_app.stores.sqlite import SqliteStore
from runtime.core.envelope import encode_content
from tests.relay_app.store_contract.corpus import NODE_A, NODE_B, T0, row

WR = WriteResult
Call = Sequence[WriteOp]
# What one write call gave: its results, or the error's type and (for a Conflict) text.
Outcome = list[WriteResult] | tuple[str, str]

R1 = row(T0, msg_id="m-1")
R2 = row(T0 + 1, msg_id="m-2")
R3 = row(T0 + 2, msg_id="m-3")
R1_OTHER_CONTENT = R1._replace(content=encode_content({"text": "changed"}))
R1_OTHER_AGENT = R1._replace(agent_id="agent-2")
R1_OTHER_NODE = R1._replace(node_id=NODE_B)
ODD_TEXT = row(
    T0, msg_id="m-odd", content={"text": "CAF\u00c9 \u0000 na\u00efve \u0391\u0392", "n": [1, True]}
)
LONG_TEXT = row(T0, msg_id="m-long", content={"words": [f"w{i}" for i in range(12_000)]})
BAD_PRIORITY = R2._replace(priority="urgent")  # past the door's check: the table refuses it
FILE = FileRecord("f-1", "agent-1", NODE_A, "m-1", "a.txt", 3, "ab" * 32, "files/agent-1/f-1")


def put(*rows: MessageRow, batch: str | None = None) -> StoreMessages:
    return StoreMessages(NODE_A, rows, batch)


CONFLICT_STORED = ("Conflict", "msg_id 'm-1' is already stored for another agent")
CONFLICT_TWICE = ("Conflict", "msg_id 'm-1' is given to two agents in one request")
UNAVAILABLE = ("StoreUnavailable", "")

# Case -> the write calls, one after another, and what each must give on both engines.
CASES: dict[str, tuple[list[Call], list[Outcome]]] = {
    "new message": ([[put(R1)]], [[WR(1)]]),
    "exact repeat": ([[put(R1)], [put(R1)]], [[WR(1)], [WR(0)]]),
    "repeat with other content": ([[put(R1)], [put(R1_OTHER_CONTENT)]], [[WR(1)], [WR(0)]]),
    "repeat for another agent": ([[put(R1)], [put(R1_OTHER_AGENT)]], [[WR(1)], CONFLICT_STORED]),
    "repeat for another node": (
        [[put(R1)], [StoreMessages(NODE_B, (R1_OTHER_NODE,))]],
        [[WR(1)], CONFLICT_STORED],
    ),
    "one id twice in a request": ([[put(R1, R2, R1)]], [[WR(2)]]),
    "one id for two agents in a request": ([[put(R1, R1_OTHER_AGENT)]], [CONFLICT_TWICE]),
    "a conflict rolls back its whole write": (
        [[put(R1)], [put(R2), put(R1_OTHER_AGENT)], [put(R2)]],
        [[WR(1)], CONFLICT_STORED, [WR(1)]],
    ),
    "batch": ([[put(R1, R2, batch="b-1")]], [[WR(2)]]),
    "repeated batch": (
        [[put(R1, R2, batch="b-1")], [put(R1, R2, batch="b-1")]],
        [[WR(2)], [WR(0, repeated=True)]],
    ),
    "batch id reused for new messages": (
        [[put(R1, batch="b-1")], [put(R2, R3, batch="b-1")]],
        [[WR(1)], [WR(2, repeated=True)]],
    ),
    "empty batch": (
        [[put(batch="b-0")], [put(batch="b-0")]],
        [[WR(0)], [WR(0, repeated=True)]],
    ),
    "several ops in one write": (
        [[put(R1), put(R1, R2, batch="b-1"), StoreStatus(NODE_A, 1.0, ())]],
        [[WR(1), WR(1), WR(1)]],
    ),
    "node status, then a newer one": (
        [[StoreStatus(NODE_A, 1.0, ())], [StoreStatus(NODE_A, 2.0, ({"agent_id": "a"},))]],
        [[WR(1)], [WR(1)]],
    ),
    "file record": ([[StoreFile(FILE)]], [[WR(1)]]),
    "file id recorded twice": ([[StoreFile(FILE)], [StoreFile(FILE)]], [[WR(1)], UNAVAILABLE]),
    "text with NUL and diacritics": ([[put(ODD_TEXT)]], [[WR(1)]]),
    "long text": ([[put(LONG_TEXT)]], [[WR(1)]]),
}


def outcomes(writer: StoreWriter, calls: list[Call]) -> list[Outcome]:
    """Each call's results, or its error (Conflict with its text: the client sees it)."""
    got: list[Outcome] = []
    for i, ops in enumerate(calls):
        try:
            got.append(writer.write(ops, T0 + i))
        except Conflict as exc:
            got.append(("Conflict", str(exc)))
        except StoreUnavailable:
            got.append(UNAVAILABLE)
    return got


def stored_messages_pg(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT id, msg_id, node_id, agent_id, content, received_at FROM messages ORDER BY id"
        )
        return [(i, m, n, a, bytes(c), r) for i, m, n, a, c, r in found]


def stored_messages_sqlite(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT id, msg_id, node_id, agent_id, content, received_at FROM messages ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("case", list(CASES))
def test_both_engines_answer_the_same_writes_the_same_way(
    case: str, postgres_dsn: str, tmp_path: Path
) -> None:
    calls, expected = CASES[case]
    sqlite_store = SqliteStore(tmp_path)
    sqlite_writer = sqlite_store.open_writer()
    pg_writer = writer_on(postgres_dsn)
    try:
        assert outcomes(sqlite_writer, calls) == expected
        assert outcomes(pg_writer, calls) == expected
    finally:
        sqlite_writer.close()
        sqlite_store.close()
        pg_writer.close()
    # The same messages, with the same content; ids in the same order (PostgreSQL's have
    # gaps where a skipped insert used one up).
    pg_rows = stored_messages_pg(postgres_dsn)
    sqlite_rows = stored_messages_sqlite(sqlite_store.path)
    assert [r[1:] for r in pg_rows] == [r[1:] for r in sqlite_rows]


def test_the_search_column_holds_the_indexed_text(postgres_dsn: str) -> None:
    writer = writer_on(postgres_dsn)
    writer.write([put(ODD_TEXT, R1)], T0)
    writer.close()
    with psycopg.connect(postgres_dsn) as conn:
        hits = conn.execute(
            "SELECT msg_id FROM messages WHERE search @@ to_tsquery('simple', %s) ORDER BY id",
            ("cafe & naive & true & \u03b1\u03b2",),
        ).fetchall()
    assert hits == [("m-odd",)]
    assert search_text(R1.content) == "hello"


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_row_the_table_refuses_fails_its_whole_write_with_a_400(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """ON CONFLICT covers the msg_id only: a row failing a CHECK (which the door never lets
    through) is refused with its whole request, never skipped and acknowledged."""
    if engine == "sqlite":
        store: SqliteStore | PostgresStore = SqliteStore(tmp_path)
    else:
        store = PostgresStore(request.getfixturevalue("postgres_dsn"))
    writer = store.open_writer()
    with pytest.raises(BadRequest, match="refused by a rule of the store"):
        writer.write([put(R1, BAD_PRIORITY)], T0)
    assert writer.write([put(R1)], T0) == [WR(1)]
    assert writer.write([put(R1, R2)], T0) == [WR(1)]
    writer.close()
    store.close()


def test_a_writer_whose_connection_broke_fails_once_then_reconnects(postgres_dsn: str) -> None:
    writer = writer_on(postgres_dsn)
    writer.write([put(R1)], T0)
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(StoreUnavailable):
        writer.write([put(R2)], T0)
    assert writer.write([put(R2)], T0) == [WR(1)]
    writer.close()
    assert stored_ids(postgres_dsn) == ["m-1", "m-2"]


def migrated(dsn: str) -> int:
    """Open (and close) a store on `dsn`: the migrations it applied."""
    store = PostgresStore(dsn)
    store.close()
    return store.migrations_applied


def writer_on(dsn: str) -> PostgresWriter:
    """A writer on a migrated database."""
    migrated(dsn)
    return PostgresWriter(dsn)


def write_concurrently(dsn: str, plans: list[list[list[MessageRow]]]) -> list[list[WriteResult]]:
    """One thread and one writer per plan, started together; each plan is its writes."""
    migrated(dsn)
    start = threading.Barrier(len(plans))
    results: list[list[WriteResult]] = [[] for _ in plans]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        writer = PostgresWriter(dsn)
        try:
            start.wait()
            for batch in plans[k]:
                results[k].extend(writer.write([put(*batch)], T0))
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    return results


def stored_ids(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [m for (m,) in conn.execute("SELECT msg_id FROM messages ORDER BY msg_id")]


def test_three_writers_with_overlapping_messages_store_each_exactly_once(
    postgres_dsn: str,
) -> None:
    pool = [row(T0 + i, msg_id=f"m-{i:04d}") for i in range(400)]
    # Writer k sends messages k*100 .. k*100+199 in batches of 25: each overlaps the next.
    plans = [[pool[s : s + 25] for s in range(k * 100, k * 100 + 200, 25)] for k in range(3)]
    results = write_concurrently(postgres_dsn, plans)
    distinct = {r.msg_id for plan in plans for batch in plan for r in batch}
    assert sum(r.inserted for rs in results for r in rs) == len(distinct)
    assert stored_ids(postgres_dsn) == sorted(distinct)


def test_writers_inserting_shared_ids_in_opposite_orders_store_each_once(
    postgres_dsn: str,
) -> None:
    fast_deadlock_detection(postgres_dsn)
    pool = [row(T0 + i, msg_id=f"m-{i:04d}") for i in range(600)]
    rounds = [pool[i : i + 200] for i in range(0, 600, 200)]
    plans = [rounds, [batch[::-1] for batch in rounds]]
    results = write_concurrently(postgres_dsn, plans)
    assert sum(r.inserted for rs in results for r in rs) == len(pool)
    assert stored_ids(postgres_dsn) == sorted(r.msg_id for r in pool)


def test_a_write_that_loses_a_deadlock_is_run_again(postgres_dsn: str) -> None:
    """Another session holds m-2 and then asks for m-1, which the writer holds while it
    waits for m-2: the writer (the only one quick to detect it) is the victim, retries
    once the other commits, and finds both stored."""
    fast_deadlock_detection(postgres_dsn)
    migrated(postgres_dsn)
    results: list[list[WriteResult]] = []
    with psycopg.connect(postgres_dsn, autocommit=True) as other:
        other.execute("SET deadlock_timeout = '10s'")
        with other.transaction():
            other.execute("INSERT INTO messages (msg_id, timestamp, content, node_id, agent_id,"
                          " received_at, search) VALUES ('m-2', 0, '', %s, 'agent-1', 0, '')",
                          (NODE_A,))  # fmt: skip
            writer = PostgresWriter(postgres_dsn)
            thread = threading.Thread(
                target=lambda: results.append(writer.write([put(R1, R2)], T0))
            )
            thread.start()
            wait_for_a_lock_wait(other)
            other.execute("INSERT INTO messages (msg_id, timestamp, content, node_id, agent_id,"
                          " received_at, search) VALUES ('m-1', 0, '', %s, 'agent-1', 0, '')",
                          (NODE_A,))  # fmt: skip
        thread.join(timeout=30)
        writer.close()
    assert results == [[WR(0)]]
    assert stored_ids(postgres_dsn) == ["m-1", "m-2"]


def fast_deadlock_detection(dsn: str) -> None:
    """Sessions of this database look for deadlocks after 20 ms instead of a second."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET deadlock_timeout = '20ms'")


def wait_for_a_lock_wait(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Return once another session of this database waits for a lock."""
    for _ in range(500):
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchone()
        if waiting and waiting[0]:
            return
        time.sleep(0.01)
    raise AssertionError("the writer never waited for the lock")


def versions(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()


def test_migrations_run_once_and_opening_again_changes_nothing(postgres_dsn: str) -> None:
    assert migrated(postgres_dsn) == len(MIGRATIONS)
    first = versions(postgres_dsn)
    assert [v for v, _ in first] == list(range(1, len(MIGRATIONS) + 1))
    assert migrated(postgres_dsn) == 0
    assert versions(postgres_dsn) == first


def test_relays_opening_a_new_database_together_migrate_it_once(postgres_dsn: str) -> None:
    start = threading.Barrier(3)
    applied: list[int] = []

    def open_store() -> None:
        start.wait()
        applied.append(migrated(postgres_dsn))

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # Each step is applied once, by whichever relay holds the lock when it is due.
    assert len(applied) == 3
    assert sum(applied) == len(MIGRATIONS)


def test_a_commit_to_many_long_escaped_recipients_is_stored_and_heard_whole(
    postgres_dsn: str,
) -> None:
    """Their news is cut into notifications by encoded size: one over PostgreSQL's 8,000
    bytes would fail the commit, and every retry of it."""
    recipients = [f"{i:03d}{chr(34) * 250}\\" for i in range(60)]  # ~520 bytes each as JSON
    store = PostgresStore(postgres_dsn)
    heard: list[frozenset[str]] = []
    store.on_stored(heard.append)
    writer = store.open_writer()
    try:
        rows = tuple(row(T0 + i, recipient=r) for i, r in enumerate(recipients))
        assert writer.write([StoreMessages(NODE_A, rows)], T0) == [WR(60)]
        deadline = time.monotonic() + 10
        while frozenset().union(*heard) != set(recipients) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert frozenset().union(*heard) == set(recipients)
    finally:
        writer.close()
        store.close()
