"""The contract of the node API's side: writes of messages, reports and files, their reads."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson
import pytest

from relay_app.errors import Conflict, StoreUnavailable
from relay_app.store import (
    FileRecord,
    MessageQuery,
    MessageRow,
    MessageStore,
    StoreFile,
    StoreMessages,
    StoreStatus,
    StoreWriter,
)
from relay_app.validate import message_row
from runtime.core.envelope import MessageEnvelope
from tests.relay_app.store_contract.conftest import Engine
from tests.relay_app.store_contract.corpus import NODE_A, NODE_B, T0, put, row, rows


def ids(messages: list[dict[str, object]]) -> list[object]:
    """The msg_ids of a page, in its order."""
    return [m["msg_id"] for m in messages]


def test_written_messages_read_back_with_their_content(
    store: MessageStore, writer: StoreWriter
) -> None:
    env = MessageEnvelope.new(
        agent_id="agent-1",
        node_id=NODE_A,
        content={"a": [1, 2, 3]},
        task_id="t-9",
        priority="high",
    )
    assert put(writer, [message_row(env.to_wire(), NODE_A)], at=100.0) == 1
    got = store.get_message(env.msg_id)
    assert got is not None
    # Content comes back as raw JSON (orjson.Fragment), ready for a response.
    got = orjson.loads(orjson.dumps(got))
    assert {k: got[k] for k in env.to_wire()} == env.to_wire()
    assert (got["received_at"], got["status"]) == (100.0, "unread")
    assert store.get_message("no-such-message") is None


def test_a_known_msg_id_is_not_stored_again(store: MessageStore, writer: StoreWriter) -> None:
    batch = rows(3)
    put(writer, batch)
    assert put(writer, [*batch[:2], row()]) == 1
    assert store.query_messages(MessageQuery()).total == 4


def test_a_known_batch_id_is_reported_repeated_and_its_new_messages_still_stored(
    store: MessageStore, writer: StoreWriter
) -> None:
    batch = tuple(rows(2))
    first = writer.write([StoreMessages(NODE_A, batch, "b-1")], 1.0)[0]
    again = writer.write([StoreMessages(NODE_A, batch, "b-1")], 2.0)[0]
    grown = writer.write([StoreMessages(NODE_A, (*batch, *rows(2)), "b-1")], 3.0)[0]
    assert (first.inserted, first.repeated) == (2, False)
    assert (again.inserted, again.repeated) == (0, True)
    assert (grown.inserted, grown.repeated) == (2, True)
    assert store.query_messages(MessageQuery()).total == 4


def test_one_write_call_is_all_or_nothing(store: MessageStore, writer: StoreWriter) -> None:
    record = FileRecord("f-1", "agent-1", NODE_A, None, "a.txt", 1, "0" * 64, "files/a/f-1")
    writer.write([StoreFile(record)], 1.0)
    with pytest.raises(StoreUnavailable):
        writer.write([StoreMessages(NODE_A, tuple(rows(3))), StoreFile(record)], 2.0)
    assert store.query_messages(MessageQuery()).total == 0


def test_a_msg_id_held_by_another_agent_is_a_conflict_and_nothing_is_stored(
    store: MessageStore, writer: StoreWriter
) -> None:
    mine = row(agent="agent-1")
    put(writer, [mine])
    squatter = mine._replace(agent_id="agent-2")
    with pytest.raises(Conflict):
        put(writer, [row(), squatter])
    assert store.query_messages(MessageQuery()).total == 1


def test_equality_filters_and_the_time_window_select_exactly_their_messages(
    store: MessageStore, writer: StoreWriter
) -> None:
    put(writer, [row(T0, agent="x", role="scout", priority="high", recipient="boss")])
    put(writer, [row(T0 + 10, agent="y", node=NODE_B, task_id="t-1")])
    put(writer, [row(T0 + 20, agent="x", priority="low")])

    def total(**query: Any) -> int:
        return store.query_messages(MessageQuery(**query)).total

    assert total(filters=(("agent_id", ("x",)),)) == 2
    assert total(filters=(("agent_id", ("x", "y")),)) == 3
    assert total(filters=(("node_id", (NODE_B,)), ("task_id", ("t-1",)))) == 1
    assert total(filters=(("role", ("scout",)), ("priority", ("high",)))) == 1
    assert total(filters=(("recipient", ("boss",)),)) == 1
    assert total(filters=(("sender", ("y",)),)) == 1  # an agent is its messages' sender
    assert total(filters=(("status", ("unread",)),)) == 3
    assert total(since=T0 + 10) == 2  # since is inclusive
    assert total(until=T0 + 10) == 1  # until is exclusive
    assert total(since=T0, until=T0 + 20, filters=(("agent_id", ("x",)),)) == 1


@pytest.mark.parametrize("descending", [True, False])
def test_keyset_pages_skip_and_repeat_no_row_while_rows_are_added(
    store: MessageStore, writer: StoreWriter, descending: bool
) -> None:
    first = rows(10)
    put(writer, first)
    seen: list[object] = []
    after: int | None = None
    added: list[MessageRow] = []
    while True:
        page = store.query_messages(MessageQuery(limit=3, after_id=after, descending=descending))
        seen += ids(page.messages)
        if len(added) < 3:  # rows keep arriving while a client pages
            added.append(row(T0 + 100 + len(added)))
            put(writer, added[-1:])
        if not page.has_more:
            break
        after = page.last_id
    expected = [r.msg_id for r in first]
    if descending:  # from the newest at the first page down: later rows are not in this walk
        assert seen == expected[::-1]
    else:  # from the oldest up: the rows added meanwhile come last, in order
        assert seen == expected + [r.msg_id for r in added]
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize("descending", [True, False])
def test_pages_run_by_report_time_whatever_order_the_rows_were_stored_in(
    store: MessageStore, writer: StoreWriter, descending: bool
) -> None:
    stored = [row(T0 + t) for t in (50, 10, 30, 30, 20)]  # two share a time: the id decides
    put(writer, stored)
    expected = [r.msg_id for r in sorted(stored, key=lambda r: r.timestamp)]
    if descending:  # ties too: the larger id first
        expected.reverse()
    whole = store.query_messages(MessageQuery(descending=descending))
    assert ids(whole.messages) == expected
    seen: list[object] = []
    after: int | None = None
    while True:
        page = store.query_messages(MessageQuery(limit=2, after_id=after, descending=descending))
        seen += ids(page.messages)
        if not page.has_more:
            break
        after = page.last_id
    assert seen == expected


def test_a_page_counts_every_match_and_says_whether_more_follow(
    store: MessageStore, writer: StoreWriter
) -> None:
    put(writer, rows(5))
    page = store.query_messages(MessageQuery(limit=5))
    assert (page.total, len(page.messages), page.has_more) == (5, 5, False)
    assert page.last_id is not None
    empty = store.query_messages(MessageQuery(filters=(("agent_id", ("nobody",)),)))
    assert (empty.total, empty.messages, empty.last_id, empty.has_more) == (0, [], None, False)


def test_a_status_report_replaces_the_previous_one(
    store: MessageStore, writer: StoreWriter
) -> None:
    writer.write([StoreStatus(NODE_B, 5.0, ())], 5.0)
    writer.write([StoreStatus(NODE_A, 1.0, ({"agent_id": "a", "outbox_depth": 5},))], 1.0)
    writer.write([StoreStatus(NODE_A, 2.0, ())], 2.0)
    assert store.node_statuses() == [
        {"node_id": NODE_A, "sent_at": 2.0, "received_at": 2.0, "agents": []},
        {"node_id": NODE_B, "sent_at": 5.0, "received_at": 5.0, "agents": []},
    ]


def test_a_file_record_reads_back(store: MessageStore, writer: StoreWriter) -> None:
    record = FileRecord("f-2", "agent-1", NODE_A, "m-1", None, 10, "a" * 64, "files/x/f-2")
    writer.write([StoreFile(record)], 5.0)
    assert store.get_file("f-2") == replace(record, received_at=5.0)
    assert store.get_file("nope") is None


def test_mail_after_gives_a_recipients_mail_oldest_first_from_a_position(
    store: MessageStore, writer: StoreWriter
) -> None:
    mail = [row(T0 + i, recipient="r1" if i % 2 else "r2") for i in range(6)]
    put(writer, [*mail, row(T0 + 9, recipient="someone-else"), row(T0 + 9)])
    first = store.mail_after(["r1", "r2"], 0, 4)
    assert [m["msg_id"] for _, m in first] == [r.msg_id for r in mail[:4]]
    positions = [p for p, _ in first]
    assert positions == sorted(set(positions))
    rest = store.mail_after(["r1", "r2"], positions[-1], 10)
    assert [m["msg_id"] for _, m in rest] == [r.msg_id for r in mail[4:]]
    only_r1 = store.mail_after(["r1"], 0, 10)
    assert [m["msg_id"] for _, m in only_r1] == [r.msg_id for r in mail[1::2]]
    assert store.mail_after(["r1"], rest[-1][0], 10) == []


def test_figures_count_messages_size_and_each_nodes_last_report(
    store: MessageStore, writer: StoreWriter
) -> None:
    assert store.figures().messages_stored == 0
    put(writer, rows(3))
    writer.write([StoreStatus(NODE_A, 1.0, ())], 42.0)
    figures = store.figures()
    assert figures.messages_stored == 3
    assert figures.database_bytes > 0
    assert figures.last_reports == {NODE_A: 42.0}


def test_listeners_hear_each_commit_of_new_messages_with_their_recipients(
    store: MessageStore, writer: StoreWriter
) -> None:
    heard: list[frozenset[str]] = []
    store.on_stored(heard.append)
    batch = [row(recipient="r1"), row(recipient="r2"), row()]
    put(writer, batch)
    put(writer, batch)  # nothing new: nobody is woken
    writer.write([StoreStatus(NODE_A, 1.0, ())], 1.0)
    put(writer, [row(recipient="r3")])
    # A listener may hear from another thread (PostgreSQL: by NOTIFY), and news of commits
    # close together may come in one call; what never comes is a call for nothing new.
    deadline = time.monotonic() + 5.0
    while frozenset().union(*heard) != {"r1", "r2", "r3"} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert heard in ([frozenset({"r1", "r2"}), frozenset({"r3"})], [frozenset({"r1", "r2", "r3"})])


def test_a_store_opened_again_on_the_same_database_keeps_everything(
    engine: Engine, store: MessageStore, writer: StoreWriter
) -> None:
    put(writer, rows(2))
    writer.write([StoreStatus(NODE_A, 1.0, ())], 1.0)
    again = engine.open()
    assert again.query_messages(MessageQuery()).total == 2
    assert [s["node_id"] for s in again.node_statuses()] == [NODE_A]
