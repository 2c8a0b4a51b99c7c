"""Login throttling, its log lines and the Secure cookie, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from relay_app.inbox.throttle import LoginThrottle, ThrottlePolicy
from relay_app.tls import init_ca, issue
from runtime.core.tls import load_server_context
from tests.relay_app.inbox.harness import OPERATOR, PASSWORD, PASSWORD_HASH, Relay, start_relay


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Relay]:
    """A relay that trusts 127.0.0.1 as a reverse proxy (so tests can name client addresses)."""
    relay = start_relay(tmp_path / "relay", trusted_proxies=("127.0.0.1",))
    yield relay
    relay.stop()


def login(
    relay: Relay, password: str, address: str | None = None, **headers: str
) -> requests.Response:
    """POST the login form, as from `address` (X-Forwarded-For) when given."""
    if address is not None:
        headers["X-Forwarded-For"] = address
    return requests.post(
        relay.url + "/messages/login",
        data={"user": OPERATOR, "password": password, "next": "/messages"},
        headers=headers,
        allow_redirects=False,
        timeout=20,
    )


def test_an_address_is_held_back_after_a_few_failures_and_answered_at_once(
    proxied: Relay,
) -> None:
    for _ in range(5):
        assert login(proxied, "wrong", "203.0.113.1").status_code == 401
    held = login(proxied, "wrong", "203.0.113.1")
    assert held.status_code == 429
    assert held.headers["Retry-After"] == "1"
    assert "wait 1 second" in held.text
    assert held.elapsed.total_seconds() < 0.5  # not held for the wait
    assert "Set-Cookie" not in held.headers
    # Another client address is not held back by the first one's failures.
    assert login(proxied, "wrong", "203.0.113.2").status_code == 401


def test_the_right_password_after_a_lock_out_waits_the_backoff_then_works(
    proxied: Relay,
) -> None:
    for _ in range(5):
        login(proxied, "wrong", "203.0.113.1")
    proxied.clock.offset += 1.05
    assert login(proxied, "wrong", "203.0.113.1").status_code == 401  # the sixth failure
    assert login(proxied, "wrong", "203.0.113.1").headers["Retry-After"] == "2"  # doubled
    assert login(proxied, PASSWORD, "203.0.113.1").status_code == 429  # even the right one
    proxied.clock.offset += 2.05
    assert login(proxied, PASSWORD, "203.0.113.1").status_code == 303
    # A success clears the address: the next mistake is a free one again.
    assert login(proxied, "wrong", "203.0.113.1").status_code == 401


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(inbox_relay: Relay) -> None:
    for i in range(5):
        assert login(inbox_relay, "wrong", f"203.0.113.{i}").status_code == 401
    # Every one came from 127.0.0.1, whatever it claimed: the sixth waits.
    assert login(inbox_relay, "wrong", "198.51.100.77").status_code == 429


def test_the_global_budget_holds_guesses_from_many_addresses(proxied: Relay) -> None:
    policy = ThrottlePolicy(hashes_per_s=1.0, hash_burst=3)
    proxied.inbox.logins.throttle = LoginThrottle(policy, proxied.inbox.now)
    assert [login(proxied, "wrong", f"198.51.100.{i}").status_code for i in range(3)] == [401] * 3
    refused = login(proxied, PASSWORD, "198.51.100.50")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    proxied.clock.offset += 1.0
    assert login(proxied, PASSWORD, "198.51.100.50").status_code == 303


def test_failures_and_successes_are_logged_without_secrets(
    proxied: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay_app.inbox.login")
    requests.post(
        proxied.url + "/messages/login",
        data={"user": "mallory\nINFO forged line", "password": "hunter2-guess"},
        headers={"X-Forwarded-For": "203.0.113.9"},
        timeout=20,
    )
    login(proxied, PASSWORD, "203.0.113.10")
    lines = [r.getMessage() for r in caplog.records if r.name == "relay_app.inbox.login"]
    assert len(lines) == 2, lines
    failed, succeeded = lines
    assert "failed" in failed
    assert "203.0.113.9" in failed
    assert "'mallory\\nINFO forged line'" in failed  # escaped: one record, one line
    assert "\n" not in failed
    assert succeeded.startswith("inbox login: user 'operator' from 203.0.113.10")
    for line in lines:
        assert "hunter2" not in line
        assert PASSWORD not in line
        assert PASSWORD_HASH.split("$")[-1] not in line
        assert "scrypt" not in line


def test_the_cookie_is_secure_over_https_by_a_trusted_proxy_only(
    proxied: Relay, inbox_relay: Relay
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    trusted = login(proxied, PASSWORD, **https)
    assert trusted.status_code == 303
    assert "; Secure" in trusted.headers["Set-Cookie"]
    assert "; Secure" not in login(proxied, PASSWORD).headers["Set-Cookie"]
    stranger = login(inbox_relay, PASSWORD, **https)
    assert stranger.status_code == 303
    assert "Secure" not in stranger.headers["Set-Cookie"]


def test_redirects_stay_relative_whatever_host_a_client_forwards(inbox_relay: Relay) -> None:
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    answer = login(inbox_relay, PASSWORD, **forged)
    assert answer.headers["Location"] == "/messages"
    session = requests.Session()
    away = session.get(
        inbox_relay.url + "/messages?q=x", headers=forged, allow_redirects=False, timeout=10
    )
    assert away.headers["Location"].startswith("/messages/login?next=")
    logout = session.post(
        inbox_relay.url + "/messages/logout", headers=forged, allow_redirects=False, timeout=10
    )
    assert logout.headers["Location"] == "/messages/login"


def test_the_cookie_is_secure_over_tls_to_the_relay_itself(tmp_path: Path) -> None:
    init_ca(tmp_path / "tls")
    issue(tmp_path / "tls", "relay", ["127.0.0.1"])
    context = load_server_context(tmp_path / "tls/relay.pem", tmp_path / "tls/relay.key", "test")
    relay = start_relay(tmp_path / "relay", ssl_context=context)
    try:
        assert relay.url.startswith("https://")
        answer = requests.post(
            relay.url + "/messages/login",
            data={"user": OPERATOR, "password": PASSWORD},
            allow_redirects=False,
            verify=str(tmp_path / "tls/ca.pem"),
            timeout=20,
        )
        assert answer.status_code == 303
        assert "; Secure" in answer.headers["Set-Cookie"]
    finally:
        relay.stop()
