"""The contract of the inbox's writes: status moves with their audit, and full-text indexing."""

from __future__ import annotations

from relay_app.inbox.search import parse_search
from relay_app.store import MessageStore, StoreWriter
from relay_app.store_inbox import Audit, InboxQuery, SetStatuses
from relay_app.store_search import IndexChunk, IndexEntries
from tests.relay_app.store_contract.corpus import T0, budget, index_all, put, row, rows


def statuses(store: MessageStore, *msg_ids: str) -> list[str]:
    """The status of each message, in order."""
    found = [store.inbox.message(m) for m in msg_ids]
    return [m.status for m in found if m is not None]


def test_a_status_moves_only_from_an_allowed_one_and_a_repeat_changes_nothing(
    store: MessageStore, writer: StoreWriter
) -> None:
    unread, archived = row(), row()
    put(writer, [unread, archived])
    writer.write([SetStatuses((archived.msg_id,), "archived", ("unread",))], T0)
    acknowledge = SetStatuses(
        (unread.msg_id, archived.msg_id, "no-such-message"),
        "acknowledged",
        ("unread",),
        Audit("acknowledge", "op", 5.0),
    )
    assert writer.write([acknowledge], T0)[0].inserted == 1
    assert statuses(store, unread.msg_id, archived.msg_id) == ["acknowledged", "archived"]
    assert writer.write([acknowledge], T0)[0].inserted == 0  # a repeat moves nothing
    entries, total = store.inbox.audit_trail(unread.msg_id, 10)
    assert (total, [(e.action, e.user, e.at) for e in entries]) == (1, [("acknowledge", "op", 5.0)])
    assert store.inbox.audit_trail(archived.msg_id, 10) == ([], 0)  # not moved, not audited


def test_many_messages_move_in_one_op(store: MessageStore, writer: StoreWriter) -> None:
    batch = rows(1200)  # more than one bound parameter list of some engines holds
    put(writer, batch)
    op = SetStatuses(tuple(r.msg_id for r in batch), "archived", ("unread", "acknowledged"))
    assert writer.write([op], T0)[0].inserted == 1200
    assert store.inbox.unread_count() == 0


def test_indexing_is_idempotent_and_an_overtaken_chunk_changes_nothing(
    store: MessageStore, writer: StoreWriter
) -> None:
    put(writer, [row(content={"text": "zanzibar"}) for _ in range(3)])
    chunk = store.inbox.unindexed(2)
    if chunk is None:  # an engine indexing at insert (PostgreSQL): an index op changes nothing
        assert writer.write([IndexEntries(0, 1, ((1, "x"),))], T0)[0].inserted == 0
    else:
        overtake_a_chunk(store, writer, chunk)
    assert store.inbox.unindexed(10) is None
    found = store.inbox.page(InboxQuery(search=parse_search("zanzibar")), budget())
    assert (len(found.rows), found.total) == (3, 3)


def overtake_a_chunk(store: MessageStore, writer: StoreWriter, chunk: IndexChunk) -> None:
    """Apply `chunk` twice and a stale chunk once, then index the rest."""
    assert (len(chunk.contents), chunk.up_to_id) == (2, chunk.contents[-1][0])
    entries = chunk.entries()
    assert writer.write([entries], T0)[0].inserted == 2
    assert writer.write([entries], T0)[0].inserted == 0  # applied already
    stale = IndexEntries(chunk.after_id, chunk.up_to_id + 1, ((chunk.up_to_id + 1, "x"),))
    assert writer.write([stale], T0)[0].inserted == 0  # the index moved on since it was read
    rest = store.inbox.unindexed(10)
    assert rest is not None
    assert rest.after_id == chunk.up_to_id
    assert len(rest.contents) == 1
    index_all(store, writer)


def test_content_that_cannot_be_decoded_is_indexed_as_empty(
    store: MessageStore, writer: StoreWriter
) -> None:
    put(writer, [row()._replace(content=b"not gzip"), row(content={"text": "zanzibar"})])
    index_all(store, writer)
    assert store.inbox.unindexed(10) is None
    found = store.inbox.page(InboxQuery(search=parse_search("zanzibar")), budget())
    assert found.total == 1
