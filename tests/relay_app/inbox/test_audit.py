"""The inbox's audit trail: each action recorded with its operator and time, and shown."""

from __future__ import annotations

import html
import sqlite3
import uuid

from relay_app.inbox.actions import EXECUTE_NAMESPACE
from tests.relay_app.inbox.harness import OPERATOR, Relay


def trail(relay: Relay, msg_id: str) -> list[tuple[str, str, str | None]]:
    """(action, user, detail) of a message's audit entries, oldest first."""
    path = relay.sqlite_path
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT action, user_name, detail FROM inbox_audit WHERE msg_id = ? ORDER BY id",
            (msg_id,),
        ).fetchall()
    finally:
        conn.close()


def act(relay: Relay, action: str, *msg_ids: str) -> None:
    """Run an action as the logged-in operator."""
    operator = relay.operator()
    data = {"csrf": relay.csrf(operator), "action": action, "msg_id": list(msg_ids)}
    answer = operator.post(relay.url + "/messages/actions", data=data, timeout=10)
    assert answer.status_code == 200


def test_each_action_is_recorded_once_per_change_with_who_and_when(inbox_relay: Relay) -> None:
    report = inbox_relay.send(agent_id="scout-1").msg_id
    started = inbox_relay.inbox.now()
    for action in ("acknowledge", "acknowledge", "archive", "restore", "archive"):
        act(inbox_relay, action, report)
    assert trail(inbox_relay, report) == [
        ("acknowledge", OPERATOR, None),  # the repeat changed nothing, so records nothing
        ("archive", OPERATOR, None),
        ("restore", OPERATOR, None),
        ("archive", OPERATOR, None),
    ]
    entries, total = inbox_relay.inbox.reader.audit_of(report)
    assert total == 4
    assert [e.action for e in entries] == ["archive", "restore", "archive", "acknowledge"]
    assert all(started - 1 <= e.at <= inbox_relay.inbox.now() + 1 for e in entries)


def test_execute_records_the_report_and_its_follow_up(inbox_relay: Relay) -> None:
    report = inbox_relay.send(agent_id="scout-1").msg_id
    act(inbox_relay, "execute", report)
    act(inbox_relay, "execute", report)  # the follow-up exists: nothing new to record
    [(action, user, follow_up)] = trail(inbox_relay, report)
    assert (action, user) == ("execute", OPERATOR)
    assert follow_up is not None
    assert trail(inbox_relay, follow_up) == [("follow_up", OPERATOR, report)]


def test_the_detail_page_shows_the_trail_escaped(inbox_relay: Relay) -> None:
    report = inbox_relay.send(agent_id="scout-1").msg_id
    act(inbox_relay, "acknowledge", report)
    act(inbox_relay, "execute", report)
    act(inbox_relay, "archive", report)
    act(inbox_relay, "restore", report)
    inbox_relay.clock.offset += 180
    operator = inbox_relay.operator()
    page = operator.get(f"{inbox_relay.url}/messages/m/{report}", timeout=10).text
    history = page[page.index('id="audit"') :]
    for verb in ("Restored", "Archived", "Executed", "Acknowledged"):
        assert f"{verb} by <strong>{OPERATOR}</strong>, <time" in history
    assert history.index("Restored") < history.index("Acknowledged")  # newest first
    assert "3 min ago" in history
    [(_, _, follow_up)] = [e for e in trail(inbox_relay, report) if e[0] == "execute"]
    assert f'href="/messages/m/{follow_up}"' in history
    follow_page = operator.get(f"{inbox_relay.url}/messages/m/{follow_up}", timeout=10).text
    assert "Created by Execute by <strong>" in follow_page


def test_an_operator_name_is_escaped_on_the_page(inbox_relay: Relay) -> None:
    from relay_app.store_inbox import Audit

    report = inbox_relay.send(agent_id="scout-1").msg_id
    hostile = "<script>alert(1)</script>"
    inbox_relay.inbox.writer.record_audit(Audit("acknowledge", hostile, 0.0), [(report, None)])
    page = inbox_relay.operator().get(f"{inbox_relay.url}/messages/m/{report}", timeout=10).text
    assert hostile not in page
    assert html.escape(hostile, quote=True) in page or "&lt;script&gt;" in page


def test_a_follow_up_id_squatted_by_a_node_is_named_not_shadowed(inbox_relay: Relay) -> None:
    report = inbox_relay.send(agent_id="scout-1").msg_id
    other = inbox_relay.send(agent_id="scout-2").msg_id
    # Follow-up ids are predictable (stable across repeats): another node stores one first.
    taken = str(uuid.uuid5(EXECUTE_NAMESPACE, report))
    inbox_relay.send("node-b", "agent-b1", msg_id=taken, content={"kind": "execute"})
    operator = inbox_relay.operator()
    data = {"csrf": inbox_relay.csrf(operator), "action": "execute", "msg_id": [report, other]}
    answer = operator.post(inbox_relay.url + "/messages/actions", data=data, timeout=10)
    assert answer.status_code == 200
    assert "1 follow-up task(s) created for 2 report(s)" in answer.text
    assert f"follow-up of {report} not stored" in answer.text
    assert trail(inbox_relay, report) == []  # no follow-up was made for it
    assert [a for a, _, _ in trail(inbox_relay, other)] == ["execute"]
    squatter = inbox_relay.inbox.reader.message(taken)
    assert squatter is not None
    assert (squatter.node_id, squatter.status) == ("node-b", "unread")  # not touched
