"""The inbox over HTTP (no browser): search inputs, login, CSRF, actions, headers, badge."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from relay_app.inbox import writer
from runtime.core.envelope import MessageEnvelope
from tests.relay_app.inbox.harness import ODD_SEARCHES, OPERATOR, Relay, start_relay


def ids_shown(html: str) -> list[str]:
    return re.findall(r'data-msg-id="([^"]+)"', html)


@pytest.fixture
def seeded(inbox_relay: Relay) -> tuple[Relay, requests.Session, str]:
    env = inbox_relay.send(content={"company": "Zanzibar Logistics", "email": "e-mail sent"})
    inbox_relay.send(content={"company": "Acme"})
    inbox_relay.indexed()
    return inbox_relay, inbox_relay.operator(), env.msg_id


@pytest.mark.parametrize("text", ODD_SEARCHES)
def test_any_search_input_answers_a_page_never_an_error(
    seeded: tuple[Relay, requests.Session, str], text: str
) -> None:
    relay, operator, _ = seeded
    for path in ("/messages", "/messages/api/updates"):
        response = operator.get(relay.url + path, params={"q": text, "after_id": 0}, timeout=10)
        assert response.status_code == 200, (path, response.text[:300])


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("zanzibar", True),
        ("ZANZIBAR logistics", True),
        ('"zanzibar logistics"', True),
        ('"logistics zanzibar"', False),
        ("zanz*", True),
        ("e-mail", True),
        ("zanzibar -acme", True),
        ("zanzibar -logistics", False),
        ("-acme", True),  # exclusions alone: everything without them, as in a mail client
        ("-zanzibar", False),
        ("acme OR zanzibar", True),
        ("AND zanzibar", True),
        ('zanzibar "', True),
        ("nothing-like-this", False),
    ],
)
def test_search_semantics(
    seeded: tuple[Relay, requests.Session, str], text: str, found: bool
) -> None:
    relay, operator, msg_id = seeded
    html = operator.get(relay.url + "/messages", params={"q": text}, timeout=10).text
    assert (msg_id in ids_shown(html)) is found


def test_a_search_of_exclusions_alone_lists_every_message_without_them_and_says_so(
    seeded: tuple[Relay, requests.Session, str],
) -> None:
    relay, operator, zanzibar = seeded
    html = operator.get(relay.url + "/messages", params={"q": "-acme"}, timeout=10).text
    assert ids_shown(html) == [zanzibar]
    assert "Showing every message without acme." in html
    updates = operator.get(
        relay.url + "/messages/api/updates", params={"q": "-acme", "after_id": 0}, timeout=10
    )
    assert updates.status_code == 200
    assert "Acme" not in updates.text


def test_a_stored_message_becomes_searchable_without_waiting_for_the_fallback_pass(
    inbox_relay: Relay,
) -> None:
    """Nobody calls index_soon here: storing the message wakes the indexer."""
    operator = inbox_relay.operator()
    env = inbox_relay.send(content={"company": "Quokka Freight"})
    stored = time.monotonic()
    shown: list[str] = []
    while time.monotonic() - stored < 5 and env.msg_id not in shown:
        time.sleep(0.05)
        html = operator.get(inbox_relay.url + "/messages", params={"q": "quokka"}, timeout=10).text
        shown = ids_shown(html)
    assert env.msg_id in shown
    assert time.monotonic() - stored < 3  # the fallback pass alone would take 5 s


def test_a_backlog_larger_than_one_pass_is_indexed_without_waiting_for_the_fallback(
    inbox_relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "INDEX_CHUNK", 10)
    monkeypatch.setattr(writer, "MAX_CHUNKS_PER_PASS", 2)  # 20 messages a pass
    inbox_relay.send_many([msg_env(i) for i in range(100)])
    stored = time.monotonic()
    while time.monotonic() - stored < 20 and _unindexed(inbox_relay):
        time.sleep(0.05)
    assert not _unindexed(inbox_relay)
    assert time.monotonic() - stored < 4  # five passes; one fallback wait alone is 5 s


def msg_env(i: int) -> MessageEnvelope:
    return MessageEnvelope.new(agent_id="agent-1", node_id="node-a", content={"n": i})


def _unindexed(relay: Relay) -> int:
    chunk = relay.store.inbox.unindexed(10_000)
    return 0 if chunk is None else len(chunk.contents)


def test_highlighting_escapes_before_marking(inbox_relay: Relay) -> None:
    inbox_relay.send(content={"text": "<b>zanzibar</b> & <script>zanzibar()</script>"})
    inbox_relay.indexed()
    html = inbox_relay.operator().get(inbox_relay.url + "/messages?q=zanzibar", timeout=10).text
    assert "&lt;b&gt;<mark>zanzibar</mark>&lt;/b&gt; &amp; &lt;script&gt;" in html
    assert "<script>zanzibar" not in html


def test_the_ui_needs_an_operator_login_not_a_node_token(inbox_relay: Relay) -> None:
    node = inbox_relay.node("node-a")
    response = node.get(inbox_relay.url + "/messages", allow_redirects=False, timeout=10)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/messages/login?next=")
    api = node.get(inbox_relay.url + "/messages/api/updates", timeout=10)
    assert api.status_code == 401


def test_a_wrong_password_is_refused(inbox_relay: Relay) -> None:
    response = requests.post(
        inbox_relay.url + "/messages/login",
        data={"user": OPERATOR, "password": "wrong"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers


def test_the_session_cookie_is_httponly_and_samesite_strict(inbox_relay: Relay) -> None:
    from tests.relay_app.inbox.harness import PASSWORD

    response = requests.post(
        inbox_relay.url + "/messages/login",
        data={"user": OPERATOR, "password": PASSWORD, "next": "https://evil.example/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/messages"  # no open redirect
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


def test_without_a_password_hash_nobody_logs_in(tmp_path: Path) -> None:
    relay = start_relay(tmp_path / "relay", password_hash=None)
    try:
        response = requests.post(
            relay.url + "/messages/login", data={"user": OPERATOR, "password": ""}, timeout=10
        )
        assert response.status_code == 401
        assert "operator_password_hash" in requests.get(relay.url + "/messages/login").text
    finally:
        relay.stop()


def test_actions_without_a_session_or_a_valid_csrf_token_are_refused(inbox_relay: Relay) -> None:
    env = inbox_relay.send()
    url = inbox_relay.url + "/messages/actions"
    form = {"action": "archive", "msg_id": env.msg_id}
    anonymous = requests.post(url, data={**form, "csrf": "x"}, allow_redirects=False, timeout=10)
    assert anonymous.status_code == 403
    operator = inbox_relay.operator()
    token = inbox_relay.csrf(operator)
    for bad in ({}, {"csrf": ""}, {"csrf": token + "x"}):
        response = operator.post(url, data={**form, **bad}, allow_redirects=False, timeout=10)
        assert response.status_code == 403
    cross_site = operator.post(
        url,
        data={**form, "csrf": token},
        headers={"Origin": "http://evil.example"},
        allow_redirects=False,
        timeout=10,
    )
    assert cross_site.status_code == 403
    assert inbox_relay.inbox.reader.counts()["archived"] == 0
    ok = operator.post(url, data={**form, "csrf": token}, allow_redirects=False, timeout=10)
    assert ok.status_code == 303
    assert inbox_relay.inbox.reader.counts()["archived"] == 1


def test_actions_are_idempotent_and_execute_stores_one_follow_up(inbox_relay: Relay) -> None:
    env = inbox_relay.send(agent_id="scout-1")
    other = inbox_relay.send(agent_id="scout-2")
    operator = inbox_relay.operator()
    token = inbox_relay.csrf(operator)
    url = inbox_relay.url + "/messages/actions"
    for _ in range(2):
        for action in ("acknowledge", "execute", "archive"):
            data = {"csrf": token, "action": action, "msg_id": [env.msg_id, other.msg_id]}
            assert operator.post(url, data=data, timeout=10).status_code == 200
    counts = inbox_relay.inbox.reader.counts()
    assert counts == {"unread": 0, "acknowledged": 2, "archived": 2}
    node = inbox_relay.node("node-a")
    follow_ups = node.get(
        inbox_relay.url + "/query/messages", params={"agent": "operator"}, timeout=10
    ).json()["messages"]
    assert sorted(m["recipient"] for m in follow_ups) == ["scout-1", "scout-2"]


def test_unread_count_and_badge_for_the_main_gui(inbox_relay: Relay) -> None:
    inbox_relay.send()
    inbox_relay.send()
    response = requests.get(inbox_relay.url + "/api/unread_count", timeout=10)
    assert response.json() == {"unread": 2}
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    script = requests.get(inbox_relay.url + "/messages/badge.js", timeout=10)
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "/api/unread_count" in script.text
    fragment = requests.get(inbox_relay.url + "/messages/badge", timeout=10)
    assert "frame-ancestors *" in fragment.headers["Content-Security-Policy"]


def test_pages_carry_a_strict_csp_and_nosniff_and_no_inline_script(inbox_relay: Relay) -> None:
    inbox_relay.send(content={"text": "</script><script>alert(1)</script>"})
    operator = inbox_relay.operator()
    for path in ("/messages", "/messages/nodes", "/messages/login"):
        response = operator.get(inbox_relay.url + path, timeout=10)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.text, re.S)
        for attributes, body in scripts:
            assert "src=" in attributes or 'type="application/json"' in attributes
            assert "<" not in body


def test_paging_stays_put_while_new_messages_arrive(inbox_relay: Relay) -> None:
    envs = [inbox_relay.send(content={"n": i}, timestamp=1_700_000_000 + i) for i in range(120)]
    operator = inbox_relay.operator()
    first = operator.get(inbox_relay.url + "/messages", timeout=10).text
    older = re.search(r'href="([^"]+)" rel="next"', first)
    assert older is not None
    for i in range(5):
        inbox_relay.send(content={"late": i})
    second = operator.get(inbox_relay.url + older.group(1).replace("&amp;", "&"), timeout=10).text
    expected = [e.msg_id for e in reversed(envs)][50:100]
    assert ids_shown(second) == expected


def test_the_detail_view_shows_pretty_json_and_files(inbox_relay: Relay) -> None:
    env = inbox_relay.send(content={"nested": {"list": [1, 2]}, "text": "x"})
    stored = inbox_relay.node("node-a").post(
        inbox_relay.url + "/sync/files",
        data={"agent_id": "agent-1", "msg_id": env.msg_id},
        files={"file": ("<b>report<b>.txt", b"file body", "text/plain")},
        timeout=10,
    )
    assert stored.status_code == 200, stored.text
    operator = inbox_relay.operator()
    html = operator.get(f"{inbox_relay.url}/messages/m/{env.msg_id}", timeout=10).text
    assert "{\n  &quot;nested&quot;: {\n    &quot;list&quot;: [" in html
    assert "&lt;b&gt;report&lt;b&gt;.txt" in html
    link = f"/messages/files/{stored.json()['file_id']}"
    assert link in html
    download = operator.get(inbox_relay.url + link, timeout=10)
    assert download.content == b"file body"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(inbox_relay.url + link, allow_redirects=False).status_code == 303
    missing = operator.get(f"{inbox_relay.url}/messages/m/no-such-id", timeout=10)
    assert missing.status_code == 404


def test_a_file_another_node_tagged_with_a_messages_id_is_not_shown_as_its_attachment(
    inbox_relay: Relay,
) -> None:
    env = inbox_relay.send(content={"text": "the real report"})
    for node_id, agent_id, name in (("node-b", "agent-b1", "forged.pdf"),
                                    ("node-a", "agent-2", "other-agent.pdf"),
                                    ("node-a", "agent-1", "real.txt")):  # fmt: skip
        stored = inbox_relay.node(node_id).post(
            inbox_relay.url + "/sync/files",
            data={"agent_id": agent_id, "msg_id": env.msg_id},
            files={"file": (name, b"body", "application/octet-stream")},
            timeout=10,
        )
        assert stored.status_code == 200, stored.text
    html = inbox_relay.operator().get(f"{inbox_relay.url}/messages/m/{env.msg_id}", timeout=10)
    assert "real.txt" in html.text
    assert "forged.pdf" not in html.text
    assert "other-agent.pdf" not in html.text
