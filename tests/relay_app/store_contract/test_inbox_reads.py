"""The contract of the inbox's reads: pages, live arrivals, search, counts, details, charts."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from relay_app.inbox.search import parse_search
from relay_app.store import FileRecord, MessageStore, StoreFile, StoreWriter
from relay_app.store_inbox import (
    Audit,
    InboxPage,
    InboxQuery,
    InboxRow,
    RecordAudit,
    SetStatuses,
)
from tests.relay_app.inbox.harness import ODD_SEARCHES
from tests.relay_app.store_contract.corpus import (
    NODE_A,
    NODE_B,
    T0,
    budget,
    index_all,
    put,
    row,
    rows,
)

ARRIVAL_DEADLINE_S = 10.0


def msg_ids(found: list[InboxRow]) -> list[str]:
    """The msg_ids of rows, in their order."""
    return [r.msg_id for r in found]


def arrived_after(
    store: MessageStore, query: InboxQuery, watermark: int, count: int
) -> list[InboxRow]:
    """The rows arriving after `watermark`, newest first, read until `count` came: an
    engine following commits (PostgreSQL) holds rows back while any transaction of its
    server is open, an autovacuum's too, so they may take a few reads to come."""
    arrived: list[InboxRow] = []
    deadline = time.monotonic() + ARRIVAL_DEADLINE_S
    while True:
        got = store.inbox.arrivals(query, watermark, (), budget())
        arrived[0:0], watermark = got.rows, got.watermark
        if len(arrived) >= count or time.monotonic() > deadline:
            return arrived
        time.sleep(0.05)


def quiet_page(store: MessageStore, query: InboxQuery) -> InboxPage:
    """A page whose watermark is past its own rows: SQLite's always is; PostgreSQL's is
    unless another transaction of the server held the horizon back as it was read (its
    rows then come again after the watermark: a repeat, never a loss), so read again."""
    deadline = time.monotonic() + ARRIVAL_DEADLINE_S
    while True:
        page = store.inbox.page(query, budget())
        repeated = store.inbox.arrivals(query, page.watermark, (), budget()).rows
        if not repeated or time.monotonic() > deadline:
            assert repeated == []
            return page
        time.sleep(0.05)


def archive(writer: StoreWriter, *ids: str) -> None:
    """Archive messages, whatever their status."""
    writer.write([SetStatuses(ids, "archived", ("unread", "acknowledged"))], T0)


def test_a_page_lists_newest_report_first_with_its_count_and_watermark(
    store: MessageStore, writer: StoreWriter
) -> None:
    late, early = row(T0 + 50), row(T0 + 10)
    put(writer, [late, early])  # stored in the other order: report time decides
    page = quiet_page(store, InboxQuery())  # the watermark is past the page's rows
    assert msg_ids(page.rows) == [late.msg_id, early.msg_id]
    assert (page.total, page.more) == (2, False)
    assert page.rows[0].content == {"text": "hello"}
    # and arrivals after it bring exactly the rows stored after the page.
    later = row(T0 + 5)
    put(writer, [later])
    assert msg_ids(arrived_after(store, InboxQuery(), page.watermark, 1)) == [later.msg_id]


@pytest.mark.parametrize("search", [None, "hello"])
def test_keyset_pages_both_ways_skip_and_repeat_no_row_while_rows_are_added(
    store: MessageStore, writer: StoreWriter, search: str | None
) -> None:
    # Four rows share one report time: the id breaks the tie.
    first = rows(8, step=10.0) + [row(T0 + 35.0) for _ in range(4)]
    put(writer, first)
    index_all(store, writer)
    query = InboxQuery(search=parse_search(search) if search else None)
    older, cursor = [], None
    while True:  # down from the newest page
        page = store.inbox.page(replace(query, before=cursor), budget(5))
        older += msg_ids(page.rows)
        put(writer, [row(T0 + 1000 + len(older))])  # newer rows keep arriving
        index_all(store, writer)
        if not page.more:
            break
        cursor = page.rows[-1].cursor
    expected = store.inbox.page(query, budget(100)).rows
    newest_first = [r.msg_id for r in expected if r.msg_id in {m.msg_id for m in first}]
    assert older == newest_first
    newer, cursor = [], page.rows[-1].cursor
    newer += msg_ids(page.rows[-1:])
    while True:  # and back up from the oldest
        page = store.inbox.page(replace(query, after=cursor), budget(5))
        newer[0:0] = msg_ids(page.rows)
        if not page.rows or not page.more:
            break
        cursor = page.rows[0].cursor
    assert newer == msg_ids(store.inbox.page(query, budget(100)).rows)
    assert len(set(newer)) == len(newer)


def test_views_and_filters_select_exactly_their_messages(
    store: MessageStore, writer: StoreWriter
) -> None:
    a = row(T0 + 1, agent="x", role="scout", priority="high")
    b = row(T0 + 2, agent="y", node=NODE_B)
    c = row(T0 + 3, agent="x", priority="low")
    put(writer, [a, b, c])
    archive(writer, c.msg_id)
    writer.write([SetStatuses((b.msg_id,), "acknowledged", ("unread",))], T0)

    def listed(**fields: Any) -> set[str]:
        page = store.inbox.page(InboxQuery(**fields), budget())
        assert page.total == len(page.rows)
        return set(msg_ids(page.rows))

    assert listed() == {a.msg_id, b.msg_id}  # "inbox": all but archived
    assert listed(status="all") == {a.msg_id, b.msg_id, c.msg_id}
    assert listed(status="unread") == {a.msg_id}
    assert listed(status="acknowledged") == {b.msg_id}
    assert listed(status="archived") == {c.msg_id}
    assert listed(status="all", agent_id="x") == {a.msg_id, c.msg_id}
    assert listed(node_id=NODE_B) == {b.msg_id}
    assert listed(role="scout", priority="high") == {a.msg_id}
    assert listed(status="all", since=T0 + 2) == {b.msg_id, c.msg_id}
    assert listed(status="all", until=T0 + 2) == {a.msg_id}


def test_the_count_stops_at_its_cap(store: MessageStore, writer: StoreWriter) -> None:
    put(writer, rows(7))
    page = store.inbox.page(InboxQuery(), budget(rows=2, cap=5))
    assert (len(page.rows), page.more, page.total) == (2, True, 5)


def test_arrivals_bring_the_rows_since_a_watermark_with_the_figures_of_the_same_read(
    store: MessageStore, writer: StoreWriter
) -> None:
    shown = rows(3)
    put(writer, shown)
    watermark = store.inbox.page(InboxQuery(), budget()).watermark
    new = rows(5, start=T0 + 100, agent="x")
    put(writer, new)
    archive(writer, shown[0].msg_id)
    writer.write([SetStatuses((shown[1].msg_id,), "acknowledged", ("unread",))], T0)
    shown_ids = [r.msg_id for r in shown]
    got = store.inbox.arrivals(InboxQuery(), watermark, shown_ids, budget(rows=3))
    # At most three: the oldest three arrivals, listed newest first; the rest come next time.
    assert msg_ids(got.rows) == [r.msg_id for r in new[:3]][::-1]
    assert (got.total, got.capped, got.unread) == (7, False, 6)
    assert got.statuses == {shown[1].msg_id: "acknowledged", shown[2].msg_id: "unread"}
    rest = store.inbox.arrivals(InboxQuery(), got.watermark, (), budget(rows=3))
    assert msg_ids(rest.rows) == [r.msg_id for r in new[3:]][::-1]
    again = store.inbox.arrivals(InboxQuery(), rest.watermark, (), budget(rows=3))
    assert (again.rows, again.watermark) == ([], rest.watermark)
    only_x = store.inbox.arrivals(InboxQuery(agent_id="x"), watermark, shown_ids, budget())
    assert (len(only_x.rows), only_x.total, only_x.statuses) == (5, 5, {})


def test_search_finds_words_phrases_prefixes_alternatives_and_exclusions(
    store: MessageStore, writer: StoreWriter
) -> None:
    lead = row(T0 + 1, content={"text": "HOT lead from Zanzibar Logistics"})
    error = row(T0 + 2, content={"error": "TimeoutError after 30 s", "retry": True})
    other = row(T0 + 3, content={"notes": ["cold lead", {"deep": "zanzibar"}]})
    put(writer, [lead, error, other])
    index_all(store, writer)

    def found(text: str) -> set[str]:
        page = store.inbox.page(InboxQuery(search=parse_search(text)), budget())
        assert page.total == len(page.rows)
        return set(msg_ids(page.rows))

    assert found("zanzibar") == {lead.msg_id, other.msg_id}
    assert found('"zanzibar logistics"') == {lead.msg_id}
    assert found("timeout*") == {error.msg_id}
    assert found("hot OR cold") == {lead.msg_id, other.msg_id}
    assert found("lead -cold") == {lead.msg_id}
    assert found("-zanzibar") == {error.msg_id}  # exclusions alone: all messages without
    assert found("true") == {error.msg_id}  # booleans are indexed as words
    assert found("nowhere") == set()


def test_search_sees_only_what_is_indexed_and_its_watermark_stops_there(
    store: MessageStore, writer: StoreWriter
) -> None:
    one, two = row(content={"text": "zanzibar one"}), row(content={"text": "zanzibar two"})
    put(writer, [one])
    index_all(store, writer)
    put(writer, [two])
    # An engine indexing at insert (PostgreSQL) has nothing pending: it finds both.
    pending = store.inbox.unindexed(10)
    indexed = [one.msg_id] if pending is not None else [one.msg_id, two.msg_id]
    query = InboxQuery(search=parse_search("zanzibar"))
    page = quiet_page(store, query)
    assert sorted(msg_ids(page.rows)) == sorted(indexed)
    index_all(store, writer)
    # The watermark stopped where the index did: arrivals bring exactly the rest.
    later = arrived_after(store, query, page.watermark, 2 - len(page.rows))
    assert sorted(msg_ids(page.rows + later)) == sorted([one.msg_id, two.msg_id])


@pytest.mark.parametrize("text", ODD_SEARCHES)
def test_no_search_input_makes_a_read_fail(
    store: MessageStore, writer: StoreWriter, text: str
) -> None:
    put(writer, [row(content={"text": "zanzibar e-mail"})])
    index_all(store, writer)
    query = InboxQuery(search=parse_search(text))
    page = store.inbox.page(query, budget())
    assert page.total is not None
    store.inbox.arrivals(query, 0, [], budget())


def test_status_counts_and_the_unread_badge_are_exact(
    store: MessageStore, writer: StoreWriter
) -> None:
    batch = rows(5)
    put(writer, batch)
    archive(writer, batch[0].msg_id)
    writer.write([SetStatuses((batch[1].msg_id,), "acknowledged", ("unread",))], T0)
    counts = store.inbox.status_counts()
    assert {s: counts.get(s, 0) for s in ("unread", "acknowledged", "archived")} == {
        "unread": 3,
        "acknowledged": 1,
        "archived": 1,
    }
    assert store.inbox.unread_count() == 3


def test_one_message_reads_back_decoded_with_its_status(
    store: MessageStore, writer: StoreWriter
) -> None:
    sent = row(T0, content={"a": [1, {"b": None}]}, task_id="t-1", recipient="boss")
    put(writer, [sent])
    got = store.inbox.message(sent.msg_id)
    assert got is not None
    assert (got.msg_id, got.content, got.status) == (sent.msg_id, {"a": [1, {"b": None}]}, "unread")
    assert (got.task_id, got.recipient, got.node_id, got.timestamp) == ("t-1", "boss", NODE_A, T0)
    assert store.inbox.message("no-such-message") is None


def test_later_messages_are_those_its_agent_sent_or_received_after_it(
    store: MessageStore, writer: StoreWriter
) -> None:
    before, report = row(T0, agent="a1"), row(T0 + 1, agent="a1")
    put(writer, [before, report])
    reply = row(T0 + 2, agent="operator", recipient="a1", content={"in_reply_to": report.msg_id})
    own, stranger = row(T0 + 3, agent="a1"), row(T0 + 4, agent="a2")
    put(writer, [reply, own, stranger])
    later = store.inbox.later_messages(report.msg_id, 10)
    assert [m.msg_id for m in later] == [reply.msg_id, own.msg_id]
    assert later[0].content == {"in_reply_to": report.msg_id}
    assert [m.msg_id for m in store.inbox.later_messages(report.msg_id, 1)] == [reply.msg_id]
    assert store.inbox.later_messages("no-such-message", 10) == []


def test_the_audit_trail_is_newest_first_and_says_how_long_it_is(
    store: MessageStore, writer: StoreWriter
) -> None:
    report = row()
    put(writer, [report])
    for n in range(4):
        archived = RecordAudit(Audit("archive", f"user-{n}", float(n)), ((report.msg_id, None),))
        writer.write([archived], T0)
    writer.write([RecordAudit(Audit("execute", "op", 9.0), ((report.msg_id, "f-1"),))], T0)
    entries, total = store.inbox.audit_trail(report.msg_id, 3)
    assert total == 5
    assert [(e.action, e.user, e.at, e.detail) for e in entries] == [
        ("execute", "op", 9.0, "f-1"),
        ("archive", "user-3", 3.0, None),
        ("archive", "user-2", 2.0, None),
    ]
    assert store.inbox.executed([report.msg_id, "other"]) == {report.msg_id: "f-1"}
    assert store.inbox.executed([]) == {}
    assert store.inbox.audit_trail("other", 3) == ([], 0)


def test_attached_files_are_only_those_of_the_messages_own_agent(
    store: MessageStore, writer: StoreWriter
) -> None:
    report = row(agent="agent-1")
    put(writer, [report])
    own = FileRecord("f-own", "agent-1", NODE_A, report.msg_id, "a.txt", 3, "a" * 64, "files/a")
    foreign = replace(own, file_id="f-foreign", agent_id="agent-2", path="files/b")
    writer.write([StoreFile(own), StoreFile(foreign)], T0)
    files = store.inbox.attached_files(report.msg_id)
    assert [(f.file_id, f.filename, f.size, f.sha256) for f in files] == [
        ("f-own", "a.txt", 3, "a" * 64)
    ]


def test_facets_list_each_distinct_agent_node_and_role_in_order(
    store: MessageStore, writer: StoreWriter
) -> None:
    put(writer, [row(agent="b", role="scout"), row(agent="a"), row(agent="b", node=NODE_B)])
    facets = store.inbox.facets(10)
    assert facets["agent_id"] == ["a", "b"]
    assert facets["node_id"] == [NODE_A, NODE_B]
    assert facets["role"] == ["scout"]
    assert store.inbox.facets(1)["agent_id"] == ["a"]


def test_volume_counts_messages_per_bucket_in_all_and_per_node(
    store: MessageStore, writer: StoreWriter
) -> None:
    put(writer, [row(T0 + 5), row(T0 + 15), row(T0 + 16, node=NODE_B), row(T0 + 40)])
    put(writer, [row(T0 - 1)])  # before the first bucket
    assert store.inbox.volume(T0, 10.0, 3, 30.0) == [1, 2, 0]
    assert store.inbox.node_volume(T0, 10.0, 3, 30.0) == {NODE_A: [1, 1, 0], NODE_B: [0, 1, 0]}
