"""The contract of operator sessions: found by token hash, expiring, extended, ended, capped."""

from __future__ import annotations

import hashlib

from relay_app.store import MessageStore, StoreWriter
from relay_app.store_sessions import (
    EndSession,
    ExtendSession,
    OpenSession,
    SessionRecord,
    SetFlash,
)
from tests.relay_app.store_contract.conftest import Engine

NOW = 1_000.0


def sha(token: str) -> str:
    """A token's hash, as the inbox hands it to the store."""
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    writer: StoreWriter, token: str, expires: float, now: float = NOW, cap: int = 10
) -> SessionRecord:
    """Store a session for "op"; return its record."""
    record = SessionRecord("op", f"csrf-{token}", expires)
    writer.write([OpenSession(sha(token), record, now, cap)], now)
    return record


def test_a_session_is_found_by_its_token_hash_until_it_expires(
    store: MessageStore, writer: StoreWriter
) -> None:
    record = open_session(writer, "t-1", expires=NOW + 100)
    assert store.sessions.find(sha("t-1"), NOW) == record
    assert store.sessions.find(sha("t-1"), NOW + 100) == record  # expires is its last moment
    assert store.sessions.find(sha("t-1"), NOW + 101) is None
    assert store.sessions.find(sha("t-2"), NOW) is None
    assert store.sessions.find("t-1", NOW) is None  # the token itself finds nothing


def test_extending_moves_the_expiry_later_never_earlier(
    store: MessageStore, writer: StoreWriter
) -> None:
    open_session(writer, "t-1", expires=NOW + 100)
    writer.write([ExtendSession(sha("t-1"), NOW + 500)], NOW)
    writer.write([ExtendSession(sha("t-1"), NOW + 200)], NOW)
    found = store.sessions.find(sha("t-1"), NOW + 400)
    assert found is not None
    assert found.expires == NOW + 500


def test_an_ended_session_stays_ended(store: MessageStore, writer: StoreWriter) -> None:
    open_session(writer, "t-1", expires=NOW + 100)
    open_session(writer, "t-2", expires=NOW + 100)
    assert writer.write([EndSession(sha("t-1"))], NOW)[0].inserted == 1
    assert writer.write([EndSession(sha("t-1"))], NOW)[0].inserted == 0
    writer.write([ExtendSession(sha("t-1"), NOW + 500)], NOW)
    assert store.sessions.find(sha("t-1"), NOW) is None
    assert store.sessions.find(sha("t-2"), NOW) is not None


def test_a_notice_is_kept_until_replaced_or_cleared(
    store: MessageStore, writer: StoreWriter
) -> None:
    open_session(writer, "t-1", expires=NOW + 100)
    writer.write([SetFlash(sha("t-1"), "3 of 3 message(s) archived")], NOW)
    found = store.sessions.find(sha("t-1"), NOW)
    assert found is not None
    assert found.flash == "3 of 3 message(s) archived"
    writer.write([SetFlash(sha("t-1"), "")], NOW)
    found = store.sessions.find(sha("t-1"), NOW)
    assert found is not None
    assert found.flash == ""


def test_past_the_cap_a_new_session_ends_the_expired_then_the_soonest_to_expire(
    store: MessageStore, writer: StoreWriter
) -> None:
    open_session(writer, "expired", expires=NOW - 1)
    open_session(writer, "soon", expires=NOW + 10)
    open_session(writer, "late", expires=NOW + 300)
    open_session(writer, "later", expires=NOW + 400, cap=3)  # the expired one makes room
    assert store.sessions.find(sha("soon"), NOW) is not None
    open_session(writer, "latest", expires=NOW + 500, cap=3)
    assert store.sessions.find(sha("soon"), NOW) is None
    for token in ("late", "later", "latest"):
        assert store.sessions.find(sha(token), NOW) is not None


def test_sessions_outlast_reopening_the_store(
    engine: Engine, store: MessageStore, writer: StoreWriter
) -> None:
    record = open_session(writer, "t-1", expires=NOW + 100)
    assert engine.open().sessions.find(sha("t-1"), NOW) == record
