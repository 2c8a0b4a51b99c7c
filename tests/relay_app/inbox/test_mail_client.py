"""The inbox's mail-client parts over HTTP: previews, read on open, thread links, live
counts, node history, the volume strip."""

from __future__ import annotations

import re
import time

import pytest

from relay_app.inbox.preview import preview_text
from runtime.core.envelope import MessageEnvelope
from tests.relay_app.inbox.harness import OPERATOR, Relay


@pytest.mark.parametrize(
    ("content", "shown"),
    [
        ({"title": "Lead: ACME", "summary": "wants a quote", "n": 3}, "Lead: ACME — wants a quote"),
        ({"kind": "report", "Text": "found 3 leads"}, "found 3 leads"),
        ({"seq": 4, "data": {"items": ["first words", "second"]}}, "first words"),
        ({"kind": "report", "seq": 1}, "report"),
        ("a bare string", "a bare string"),
        ({"n": 1, "ok": True}, "(no text)"),
        ([], "(no text)"),
        (
            {"kind": "execute", "in_reply_to": "x", "report": {"title": "Lead"}},
            "Follow-up task: Lead",
        ),
    ],
)
def test_the_preview_is_the_gist_not_every_value(content: object, shown: str) -> None:
    assert preview_text(content) == shown


def test_a_search_match_outside_the_gist_is_shown_around_the_match(inbox_relay: Relay) -> None:
    inbox_relay.send(content={"title": "Weekly report", "notes": ["x"] * 5 + ["zanzibar seen"]})
    inbox_relay.indexed()
    page = inbox_relay.operator().get(inbox_relay.url + "/messages?q=zanzibar", timeout=10).text
    assert "<mark>zanzibar</mark> seen" in page


def test_opening_an_unread_message_marks_it_read_and_audits_it(inbox_relay: Relay) -> None:
    env = inbox_relay.send()
    operator = inbox_relay.operator()
    page = operator.get(f"{inbox_relay.url}/messages/m/{env.msg_id}", timeout=10).text
    assert 'data-status="acknowledged"' in page
    assert 'id="unread-count" title="unread messages">0<' in page
    assert f"Acknowledged by <strong>{OPERATOR}</strong>" in page
    assert inbox_relay.inbox.reader.message(env.msg_id).status == "acknowledged"  # type: ignore[union-attr]


def test_a_report_and_its_follow_up_link_each_other(inbox_relay: Relay) -> None:
    report = inbox_relay.send(content={"title": "Found ACME", "text": "call them"})
    operator = inbox_relay.operator()
    form = {"csrf": inbox_relay.csrf(operator), "one": f"execute:{report.msg_id}"}
    operator.post(f"{inbox_relay.url}/messages/actions", data=form, timeout=10)
    listing = operator.get(f"{inbox_relay.url}/messages", timeout=10).text
    follow_up = re.search(r'class="state-executed" href="/messages/m/([^"]+)"', listing)
    assert follow_up is not None
    page = operator.get(f"{inbox_relay.url}/messages/m/{report.msg_id}", timeout=10).text
    assert 'id="follow-up-link"' in page
    assert follow_up.group(1) in page
    answer = operator.get(f"{inbox_relay.url}/messages/m/{follow_up.group(1)}", timeout=10).text
    origin = re.search(r'<p class="link-out origin" id="origin">(.*?)</p>', answer, re.S)
    assert origin is not None
    assert f'href="/messages/m/{report.msg_id}"' in origin.group(1)
    assert "Found ACME — call them" in origin.group(1)
    assert f"requested by {OPERATOR}" in origin.group(1)
    assert "<time datetime=" in origin.group(1)


def test_live_updates_bring_every_row_and_a_count_from_the_same_read(inbox_relay: Relay) -> None:
    operator = inbox_relay.operator()
    inbox_relay.send()
    first = operator.get(f"{inbox_relay.url}/messages/api/updates?after_id=0", timeout=10).json()
    assert (len(first["rows"]), first["summary"], first["unread"]) == (1, "1 matching", 1)
    envs = [MessageEnvelope.new(agent_id="agent-1", node_id="node-a", content={"i": i})
            for i in range(70)]  # fmt: skip
    inbox_relay.send_many(envs)
    seen, watermark = 0, first["watermark"]
    for _ in range(3):  # more than one poll's worth: the rest comes on the next poll
        url = f"{inbox_relay.url}/messages/api/updates?after_id={watermark}"
        update = operator.get(url, timeout=10).json()
        seen += len(update["rows"])
        watermark = update["watermark"]
        assert update["summary"] == "71 matching"
        assert update["unread"] == 71
    assert seen == 70


def test_node_reports_fill_a_lag_history_shown_as_sparklines(inbox_relay: Relay) -> None:
    for lag in (0, 30, 5):
        agent = {"agent_id": "a-very-long-agent-name-0001", "oldest_unsynced_age_s": lag}
        inbox_relay.report("node-a", [agent])
        time.sleep(0.01)
    assert inbox_relay.inbox.lag_history.lags("node-a") == [0.0, 30.0, 5.0]
    inbox_relay.send("node-a")
    page = inbox_relay.operator().get(f"{inbox_relay.url}/messages/nodes", timeout=10).text
    assert page.count('<svg class="spark"') == 2
    assert "sync lag (s) per report: latest 5, max 30" in page


def test_the_volume_strip_counts_messages_per_hour(inbox_relay: Relay) -> None:
    now = time.time()
    for age in (10, 20, 3 * 3600):
        inbox_relay.send(timestamp=now - age)
    page = inbox_relay.operator().get(f"{inbox_relay.url}/messages", timeout=10).text
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', page)]
    assert len(counts) == 24
    assert sum(counts) == 3
    assert counts[-1] == 2
    assert "3 messages in the last 24 h" in page


def test_live_updates_say_the_status_of_the_rows_a_page_lists(inbox_relay: Relay) -> None:
    kept, read = inbox_relay.send(), inbox_relay.send()
    operator = inbox_relay.operator()
    form = {"csrf": inbox_relay.csrf(operator), "one": f"acknowledge:{read.msg_id}"}
    operator.post(f"{inbox_relay.url}/messages/actions", data=form, timeout=10)
    shown = f"{kept.msg_id},{read.msg_id},not an id,{'x' * 500}"
    url = f"{inbox_relay.url}/messages/api/updates?status=unread&after_id=0"
    update = operator.get(url, params={"shown": shown}, timeout=10).json()
    assert update["statuses"] == {kept.msg_id: "unread"}  # the read one left the view
    assert update["summary"] == "1 matching"
    everything = f"{inbox_relay.url}/messages/api/updates?status=all&after_id=0"
    update = operator.get(everything, params={"shown": shown}, timeout=10).json()
    assert update["statuses"] == {kept.msg_id: "unread", read.msg_id: "acknowledged"}


def test_a_row_past_the_time_range_leaves_it_with_the_count(inbox_relay: Relay) -> None:
    old = inbox_relay.send(timestamp=time.time() - 3500)
    operator = inbox_relay.operator()
    url = f"{inbox_relay.url}/messages/api/updates?range=1h&after_id=0"
    assert operator.get(url, params={"shown": old.msg_id}, timeout=10).json()["statuses"]
    inbox_relay.clock.offset = 200  # the message is now older than an hour
    update = operator.get(url, params={"shown": old.msg_id}, timeout=10).json()
    assert update["statuses"] == {}
    assert update["summary"] == "0 matching"
