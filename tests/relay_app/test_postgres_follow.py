"""Following the PostgreSQL corpus below the watermark never skips a late commit, and a
follower's position (one integer) resumes exactly after the last row it was served."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import TupleRow

from relay_app.stores import postgres_follow
from relay_app.stores.postgres import PostgresStore
from relay_app.stores.postgres_follow import (
    ID_MAX,
    POSITION_MAX,
    SPAN,
    Spot,
    position_of,
    spot_of,
    visible_horizon,
)
from runtime.core.envelope import encode_content
from tests.relay_app.store_contract.corpus import NODE_A, T0, put, row

Conn = psycopg.Connection[TupleRow]
INSERT = (
    "INSERT INTO messages (msg_id, timestamp, node_id, agent_id, recipient, content,"
    " received_at, search) VALUES (%s, %s, %s, 'agent-1', %s, %s, %s, ''::tsvector)"
    " RETURNING id, xact::text"
)
CONTENT = encode_content({"text": "hello"})
DEADLINE_S = 10.0
START = 0  # the position before every row


@pytest.fixture
def dsn(postgres_dsn: str) -> str:
    PostgresStore(postgres_dsn).close()  # the schema
    return postgres_dsn


@pytest.fixture
def poller(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def insert(conn: Conn, msg_id: str, recipient: str = "agent-9") -> tuple[int, int]:
    """Insert one message on `conn`, in its open transaction (or its own): (id, xact).

    The transaction's first id is recorded as the writer records it."""
    if conn.autocommit:
        with conn.transaction():
            return _insert(conn, msg_id, recipient)
    return _insert(conn, msg_id, recipient)


def _insert(conn: Conn, msg_id: str, recipient: str) -> tuple[int, int]:
    found = conn.execute(INSERT, (msg_id, T0, NODE_A, recipient, CONTENT, T0)).fetchone()
    assert found is not None
    conn.execute(
        "INSERT INTO commits (xact, first_id) VALUES (pg_current_xact_id(), %s)"
        " ON CONFLICT (xact) DO NOTHING",
        (found[0],),
    )
    return found[0], int(found[1])


def messages_after(
    conn: Conn, position: int, limit: int, recipients: list[str] | None = None, offset: int = 0
) -> tuple[list[tuple[int, str]], int]:
    """(position, msg_id) of each row served past `position`, and where to read on."""
    where, params = ("", []) if recipients is None else (" AND m.recipient = ANY(%s)", [recipients])
    followed = postgres_follow.follow(
        conn, position, limit, offset, columns="m.id, m.msg_id", where=where, params=params
    )
    return [(r[0], r[2]) for r in followed.rows], followed.position


def follow(conn: Conn, position: int, limit: int = 100) -> tuple[list[str], int]:
    page, after = messages_after(conn, position, limit)
    return [msg_id for _, msg_id in page], after


def wait_for_horizon_past(conn: Conn, xact: int) -> None:
    """Wait until `xact` has ended as far as readers know (another test's transaction on
    the server may hold the horizon a moment)."""
    deadline = time.monotonic() + DEADLINE_S
    while visible_horizon(conn) <= xact and time.monotonic() < deadline:
        time.sleep(0.02)
    assert visible_horizon(conn) > xact


def follow_until(conn: Conn, position: int, want: int, limit: int = 3) -> list[str]:
    """Follow from `position` until `want` messages came (other tests' transactions on the
    server may hold the horizon a moment), then once more to show nothing else comes."""
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < want and time.monotonic() < deadline:
        page, position = follow(conn, position, limit=limit)
        seen += page
    assert follow(conn, position)[0] == []
    return seen


def test_a_late_commit_is_served_after_the_rows_that_committed_before_it(
    dsn: str, poller: Conn
) -> None:
    with psycopg.connect(dsn) as a, psycopg.connect(dsn, autocommit=True) as b:
        a_id, a_xact = insert(a, "m-a")  # A takes the lower id and stays open
        b_id, b_xact = insert(b, "m-b")  # B takes the higher one and commits
        assert a_id < b_id
        assert a_xact < b_xact
        assert visible_horizon(poller) <= a_xact

        # A naive poller reads "every id past the last one seen" and moves past A's id.
        naive = poller.execute("SELECT id FROM messages WHERE id > 0 ORDER BY id").fetchall()
        assert naive == [(b_id,)]
        # Below the watermark nothing of B shows while A can still commit before it.
        assert follow(poller, START)[0] == []

        a.commit()
        wait_for_horizon_past(poller, b_xact)
        late = poller.execute("SELECT id FROM messages WHERE id > %s", (b_id,)).fetchall()
        assert late == []  # the naive poller skipped A's row for ever

        page, after = messages_after(poller, START, 10)
        assert [m for _, m in page] == ["m-a", "m-b"]
        assert page[0][0] < page[1][0] <= after
        assert follow(poller, after)[0] == []
        assert follow(poller, page[0][0])[0] == ["m-b"]


def test_a_poller_sees_every_message_of_concurrent_writers_exactly_once(
    dsn: str, poller: Conn
) -> None:
    writers, each = 4, 40
    done = threading.Event()
    failures: list[BaseException] = []
    committed: list[int] = []  # ids in about the order they committed
    lock = threading.Lock()

    def write(n: int) -> None:
        # Each write holds its transaction open a random moment after taking its id, so
        # ids commit out of order across the writers.
        rng = random.Random(n)
        try:
            with psycopg.connect(dsn) as conn:
                for i in range(each):
                    row_id, _ = insert(conn, f"m-{n}-{i}")
                    time.sleep(rng.uniform(0, 0.01))
                    conn.commit()
                    with lock:
                        committed.append(row_id)
        except BaseException as exc:  # reported by the assert below, not as a warning
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    seen: list[str] = []
    cursor = START
    deadline = time.monotonic() + DEADLINE_S
    while not done.is_set() and time.monotonic() < deadline:
        if not any(t.is_alive() for t in threads):
            done.set()  # one more full read after the last commit
        page, cursor = follow(poller, cursor, limit=7)
        seen += page
    for thread in threads:
        thread.join()
    seen += follow_until(poller, cursor, writers * each - len(seen))

    assert not failures
    assert committed != sorted(committed)  # the trap was there: ids committed out of order
    assert len(seen) == len(set(seen)) == writers * each
    assert set(seen) == {f"m-{n}-{i}" for n in range(writers) for i in range(each)}


def test_writers_batches_are_followed_in_pages(dsn: str, poller: Conn) -> None:
    store = PostgresStore(dsn)
    writer = store.open_writer()
    stored = [row(T0 + i, msg_id=f"m-{i:02d}") for i in range(23)]
    for start in range(0, 23, 5):  # transactions of 5 rows, pages of 3: cut inside them
        put(writer, stored[start : start + 5])
    writer.close()
    store.close()
    assert follow_until(poller, START, 23) == [r.msg_id for r in stored]
    page, _ = messages_after(poller, START, 23)
    positions = [p for p, _ in page]
    assert positions == sorted(set(positions))


def test_only_messages_to_the_recipients_asked_for_are_served(dsn: str, poller: Conn) -> None:
    recipient_of = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, recipient in enumerate(["agent-x", "agent-y", "agent-x", "agent-z"]):
            insert(conn, f"m-{i}", recipient)
            recipient_of[f"m-{i}"] = recipient

    def to(recipients: list[str]) -> list[tuple[str, str]]:
        page, _ = messages_after(poller, START, 10, recipients)
        return [(m, recipient_of[m]) for _, m in page]

    deadline = time.monotonic() + DEADLINE_S
    while len(to(["agent-x", "agent-y", "agent-z"])) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert to(["agent-x"]) == [("m-0", "agent-x"), ("m-2", "agent-x")]
    assert to(["agent-y", "agent-nobody"]) == [("m-1", "agent-y")]
    assert to([]) == []


def test_a_limit_below_one_or_a_position_out_of_range_is_refused(poller: Conn) -> None:
    with pytest.raises(ValueError, match="limit"):
        messages_after(poller, START, 0)
    with pytest.raises(ValueError, match="out of range"):
        messages_after(poller, POSITION_MAX + 1, 1)
    with pytest.raises(ValueError, match="out of range"):
        messages_after(poller, -1, 1)


def test_a_position_stands_for_the_row_it_was_given_for(poller: Conn) -> None:
    row_id, xact = insert(poller, "m-1")
    first = row_id
    for offset in (0, 10**9):
        for step in (0, 1, 7):
            position = position_of(xact, first + step, first, offset)
            assert spot_of(poller, position, offset) == Spot(xact, first + step)
        past_all = offset + xact * SPAN + SPAN - 1
        assert spot_of(poller, past_all, offset) == Spot(xact, ID_MAX)
        assert position_of(xact, first + SPAN - 3, first, offset) < past_all


def test_rows_copied_from_sqlite_go_on_from_a_cursor_the_sqlite_relay_gave(
    dsn: str, poller: Conn
) -> None:
    """Copied rows have xact 0 and keep their ids; the offset puts every later row past
    them, so a node's old cursor (a SQLite row id) resumes at the next copied row."""
    for i in range(1, 6):
        poller.execute(
            "INSERT INTO messages (id, msg_id, timestamp, node_id, agent_id, content,"
            " received_at, search, xact) VALUES (%s, %s, 0, %s, 'a', %s, 0, '', '0')",
            (i, f"old-{i}", NODE_A, CONTENT),
        )
    poller.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), 5)")
    insert(poller, "new-1")
    page, after = messages_after(poller, 3, 10, offset=5)
    assert [m for _, m in page] == ["old-4", "old-5", "new-1"]
    assert [p for p, _ in page][:2] == [4, 5]
    assert messages_after(poller, after, 10, offset=5)[0] == []
