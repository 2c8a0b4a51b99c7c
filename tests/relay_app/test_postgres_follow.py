"""Following the PostgreSQL corpus below the watermark never skips a late commit, and the
follow cursor's door takes back only what it gave out (issue 15 item 3)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg.rows import TupleRow

from relay_app.stores.postgres import PostgresStore
from relay_app.stores.postgres_follow import (
    ID_MAX,
    START,
    XACT_MAX,
    FollowCursor,
    messages_after,
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


@pytest.fixture
def dsn(postgres_dsn: str) -> str:
    PostgresStore(postgres_dsn)  # the schema
    return postgres_dsn


@pytest.fixture
def poller(dsn: str) -> Iterator[Conn]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def insert(conn: Conn, msg_id: str, recipient: str = "agent-9") -> tuple[int, int]:
    """Insert one message on `conn` (in whatever transaction it is in): its (id, xact)."""
    found = conn.execute(INSERT, (msg_id, T0, NODE_A, recipient, CONTENT, T0)).fetchone()
    assert found is not None
    return found[0], int(found[1])


def follow(conn: Conn, cursor: FollowCursor, limit: int = 100) -> tuple[list[str], FollowCursor]:
    page, after = messages_after(conn, cursor, limit)
    return [message["msg_id"] for _, message in page], after


def wait_for_horizon_past(conn: Conn, xact: int) -> None:
    """Wait until `xact` has ended as far as readers know (another test's transaction on
    the server may hold the horizon a moment)."""
    deadline = time.monotonic() + DEADLINE_S
    while visible_horizon(conn) <= xact and time.monotonic() < deadline:
        time.sleep(0.02)
    assert visible_horizon(conn) > xact


def follow_until(conn: Conn, cursor: FollowCursor, want: int) -> list[str]:
    """Follow from `cursor` until `want` messages came (other tests' transactions on the
    server may hold the horizon a moment), then once more to show nothing else comes."""
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(seen) < want and time.monotonic() < deadline:
        page, cursor = follow(conn, cursor, limit=3)
        seen += page
    assert follow(conn, cursor) == ([], cursor)
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
        assert follow(poller, START) == ([], START)

        a.commit()
        wait_for_horizon_past(poller, b_xact)
        late = poller.execute("SELECT id FROM messages WHERE id > %s", (b_id,)).fetchall()
        assert late == []  # the naive poller skipped A's row for ever

        page, after = messages_after(poller, START, 10)
        assert [(c, m["msg_id"]) for c, m in page] == [
            (FollowCursor(a_xact, a_id), "m-a"),
            (FollowCursor(b_xact, b_id), "m-b"),
        ]
        assert after == FollowCursor(b_xact, b_id)
        assert follow(poller, after) == ([], after)


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
    writer = PostgresStore(dsn).open_writer()
    stored = [row(T0 + i, msg_id=f"m-{i}") for i in range(5)]
    put(writer, stored[:3])
    put(writer, stored[3:])
    writer.close()
    assert follow_until(poller, START, 5) == [r.msg_id for r in stored]


def test_only_messages_to_the_recipients_asked_for_are_served(dsn: str, poller: Conn) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, recipient in enumerate(["agent-x", "agent-y", "agent-x", "agent-z"]):
            insert(conn, f"m-{i}", recipient)

    def to(recipients: list[str]) -> list[tuple[str, str]]:
        page, _ = messages_after(poller, START, 10, recipients)
        return [(m["msg_id"], m["recipient"]) for _, m in page]

    deadline = time.monotonic() + DEADLINE_S
    while len(to(["agent-x", "agent-y", "agent-z"])) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert to(["agent-x"]) == [("m-0", "agent-x"), ("m-2", "agent-x")]
    assert to(["agent-y", "agent-nobody"]) == [("m-1", "agent-y")]
    assert to([]) == []


def test_a_limit_below_one_or_a_cursor_out_of_range_is_refused(poller: Conn) -> None:
    with pytest.raises(ValueError, match="limit"):
        messages_after(poller, START, 0)
    with pytest.raises(ValueError, match="out of range"):
        messages_after(poller, FollowCursor(0, ID_MAX + 1), 1)
    with pytest.raises(ValueError, match="out of range"):
        messages_after(poller, FollowCursor(-1, 0), 1)


@given(st.integers(0, XACT_MAX), st.integers(0, ID_MAX))
def test_a_cursor_round_trips_through_a_url_safe_string(xact: int, row_id: int) -> None:
    text = FollowCursor(xact, row_id).encode()
    assert len(text) == 22
    assert text.isascii()
    assert all(c.isalnum() or c in "-_" for c in text)
    assert FollowCursor.decode(text) == (xact, row_id)


NEAR_CURSORS = (
    st.text()
    | st.from_regex(r"[A-Za-z0-9_=+/-]{20,24}", fullmatch=True)
    | st.builds(
        lambda c, cut, tail: c.encode()[:cut] + tail,
        st.builds(FollowCursor, st.integers(0, XACT_MAX), st.integers(0, 2**64 - 1)),
        st.integers(18, 22),
        st.sampled_from(["", "=", "==", "A", "\n", "\u0661", " "]),
    )
)


@given(NEAR_CURSORS)
@example("")
@example("A" * 21 + "B")  # a second spelling of the 128 bits of "A" * 22
@example(FollowCursor(0, 2**63).encode())  # an id past bigint
@example(FollowCursor(0, 0).encode() + "==")
@example("A" * 21 + "\n")
@example("\u0661" * 22)
def test_decoding_any_string_gives_its_cursor_or_a_value_error(text: str) -> None:
    try:
        cursor = FollowCursor.decode(text)
    except ValueError as exc:
        error = str(exc)
    else:
        assert cursor.encode() == text
        assert 0 <= cursor.id <= ID_MAX
        return
    assert error == "not a follow cursor made by this relay"
