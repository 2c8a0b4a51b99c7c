"""The digests a SQLite relay keeps in memory answer as reading the table would, through
new messages, repeats, archive moves and restores, and a build that races the writer."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from relay_app.stores.sqlite import SqliteStore, SqliteWriter
from relay_app.stores.sqlite_digests import KeptDigests
from runtime.core.digest import BUCKET_SECONDS, Digest, digests_of
from tests.relay_app.store_contract.corpus import NODE_A, put, rows

HOUR = BUCKET_SECONDS


def table_digests(store: SqliteStore, since: float, until: float) -> dict[int, tuple[int, int]]:
    """Digests read from the table, page by page, as without kept hours."""
    found: dict[int, tuple[int, int]] = {}
    at: float | None = since
    while at is not None:
        page = store.refill._scan("agent-1", NODE_A, at, until, 7)
        found.update({h: d.key() for h, d in page.digests.items()})
        at = page.next_since
    return found


def answered(store: SqliteStore, since: float, until: float) -> dict[int, tuple[int, int]]:
    page = store.refill.digests("agent-1", NODE_A, since, until, 10**6)
    assert page.next_since is None
    return {h: d.key() for h, d in page.digests.items()}


def test_kept_hours_follow_every_write_and_match_the_table(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay")
    writer = store.open_writer()
    try:
        now = time.time()
        put(writer, rows(40, start=now - 50 * HOUR, step=HOUR / 3))
        first = answered(store, 0.0, math.inf)  # builds the kept hours
        assert first == table_digests(store, 0.0, math.inf)
        fresh = rows(30, start=now - 10 * HOUR, step=HOUR / 4)
        put(writer, fresh)
        put(writer, fresh[:5])  # repeats store nothing
        put(writer, rows(5, start=now - 40 * 86400.0))  # older than the kept hours
        for since, until in (
            (0.0, math.inf),
            (now - 9.5 * HOUR, now - 2.25 * HOUR),
            (now - 40 * 86400.0, now - 20 * HOUR),
            (now - 7 * HOUR, math.inf),
        ):
            assert answered(store, since, until) == table_digests(store, since, until)
    finally:
        writer.close()
        store.close()


def test_a_build_that_races_the_writer_counts_each_message_once() -> None:
    """Stored while the hours are read: counted by the read or after it, never twice."""
    kept = KeptDigests(clock=lambda: 10 * 86400.0 * 40)
    agent, node, ts = "agent-1", NODE_A, 10 * 86400.0 * 40 - 60

    def build(_: float) -> tuple[int, dict[int, Digest]]:
        # Rows 1-3 are in the read; 3 and 4 are told while it runs: only 4 must be added.
        kept.stored([(3, agent, node, ts, "m3"), (4, agent, node, ts, "m4")])
        assert kept.hours(agent, node, build) is None  # another reader meanwhile: the table
        return 3, digests_of([(ts, "m1"), (ts, "m2"), (ts, "m3")])

    got = kept.hours(agent, node, build)
    assert got is not None
    expected = digests_of([(ts, m) for m in ("m1", "m2", "m3", "m4")])
    assert {h: d.key() for h, d in got[1].items()} == {h: d.key() for h, d in expected.items()}
    kept.stored([(5, agent, node, ts, "m5"), (2, agent, node, ts, "m2")])
    again = kept.hours(agent, node, build)
    assert again is not None
    expected = digests_of([(ts, m) for m in ("m1", "m2", "m3", "m4", "m5")])
    assert {h: d.key() for h, d in again[1].items()} == {h: d.key() for h, d in expected.items()}


def test_a_first_request_during_a_write_still_hears_of_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept hours first built while a write is open: the write's rows are added after it."""
    store = SqliteStore(tmp_path / "relay")
    writer = store.open_writer()
    try:
        now = time.time()
        put(writer, rows(3, start=now - 5 * HOUR, step=60))
        store_messages = SqliteWriter._store_messages

        def asked_meanwhile(self: SqliteWriter, *args: Any) -> Any:
            result = store_messages(self, *args)
            answered(store, 0.0, math.inf)  # another thread's first request, before COMMIT
            return result

        monkeypatch.setattr(SqliteWriter, "_store_messages", asked_meanwhile)
        put(writer, rows(4, start=now - 2 * HOUR, step=60))
        monkeypatch.undo()
        assert answered(store, 0.0, math.inf) == table_digests(store, 0.0, math.inf)
    finally:
        writer.close()
        store.close()


def test_forgotten_hours_are_read_from_the_table_again(tmp_path: Path) -> None:
    """What the writer drops when it cannot follow a commit comes back whole."""
    store = SqliteStore(tmp_path / "relay")
    writer = store.open_writer()
    try:
        now = time.time()
        put(writer, rows(6, start=now - 3 * HOUR, step=600))
        answered(store, 0.0, math.inf)
        store.refill._kept.forget()
        put(writer, rows(4, start=now - 2 * HOUR, step=600))
        assert answered(store, 0.0, math.inf) == table_digests(store, 0.0, math.inf)
    finally:
        writer.close()
        store.close()
