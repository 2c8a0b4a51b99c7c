"""Operator sessions live in the store: they outlast a restart, slide with use, expire, end
at logout, carry the notice of the next page, and the database holds only token hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import requests

from relay_app.inbox.sessions import COOKIE, SESSION_TTL_S
from tests.relay_app.inbox.harness import Relay, start_relay


def _status(relay: Relay, session: requests.Session) -> int:
    """The status of GET /messages for `session` (303 to the login form when logged out)."""
    return session.get(relay.url + "/messages", allow_redirects=False, timeout=10).status_code


def test_a_relay_restart_keeps_the_operator_logged_in(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay")
    try:
        operator = relay.operator()
        assert _status(relay, operator) == 200
    finally:
        relay.stop()
    again = start_relay(tmp_path / "relay")
    try:
        assert _status(again, operator) == 200
        assert _status(again, requests.Session()) == 303
    finally:
        again.stop()


def test_the_database_holds_a_hash_of_the_session_token_never_the_token(
    inbox_relay: Relay,
) -> None:
    token = inbox_relay.operator().cookies[COOKIE]
    stored = b"".join(p.read_bytes() for p in inbox_relay.sqlite_path.parent.iterdir())
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored
    assert token.encode() not in stored


def test_a_session_slides_with_use_and_expires_when_left_alone(inbox_relay: Relay) -> None:
    operator = inbox_relay.operator()
    inbox_relay.clock.offset = SESSION_TTL_S - 120
    assert _status(inbox_relay, operator) == 200  # used: another full TTL from now
    inbox_relay.clock.offset = 2 * SESSION_TTL_S - 240
    assert _status(inbox_relay, operator) == 200
    inbox_relay.clock.offset = 3 * SESSION_TTL_S
    assert _status(inbox_relay, operator) == 303


def test_logout_ends_the_session_for_every_copy_of_the_cookie(inbox_relay: Relay) -> None:
    operator = inbox_relay.operator()
    copy = requests.Session()
    copy.cookies.set(COOKIE, operator.cookies[COOKIE])
    assert _status(inbox_relay, copy) == 200
    csrf = inbox_relay.csrf(operator)
    operator.post(inbox_relay.url + "/messages/logout", data={"csrf": csrf}, timeout=10)
    assert _status(inbox_relay, copy) == 303


def test_an_actions_notice_shows_once_on_the_next_page(inbox_relay: Relay) -> None:
    env = inbox_relay.send(content={"text": "a report"})
    operator = inbox_relay.operator()
    form = {"csrf": inbox_relay.csrf(operator), "one": f"acknowledge:{env.msg_id}"}
    done = operator.post(inbox_relay.url + "/messages/actions", data=form, timeout=10)
    assert "1 of 1 message(s) acknowledged" in done.text
    again = operator.get(inbox_relay.url + "/messages", timeout=10)
    assert "message(s) acknowledged" not in again.text
