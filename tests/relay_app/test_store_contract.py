"""The MessageStore contract, run against every implementation (today: SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from relay_app.errors import StoreUnavailable
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
from relay_app.stores.sqlite import SqliteStore
from relay_app.validate import message_row
from tests.relay_app.helpers import NODE_A, message


def rows(count: int, **fields: Any) -> tuple[MessageRow, ...]:
    """`count` fresh message rows from node-a."""
    return tuple(message_row(message(**fields).to_wire(), NODE_A) for _ in range(count))


class StoreContract:
    """Tests every MessageStore must pass; subclasses provide the `store` fixture."""

    @pytest.fixture
    def writer(self, store: MessageStore) -> Iterator[StoreWriter]:
        """The store's writer, closed afterwards."""
        writer = store.open_writer()
        yield writer
        writer.close()

    def test_written_messages_read_back_with_their_content(
        self, store: MessageStore, writer: StoreWriter
    ) -> None:
        env = message(content={"a": [1, 2, 3]}, task_id="t-9", priority="high")
        row = message_row(env.to_wire(), NODE_A)
        assert writer.write([StoreMessages(NODE_A, (row,))], 100.0)[0].inserted == 1
        got = store.get_message(env.msg_id)
        assert got is not None
        # Content comes back as raw JSON (orjson.Fragment), ready for a response.
        got = orjson.loads(orjson.dumps(got))
        assert {k: got[k] for k in env.to_wire()} == env.to_wire()
        assert (got["received_at"], got["status"]) == (100.0, "unread")

    def test_a_known_msg_id_is_not_stored_again(
        self, store: MessageStore, writer: StoreWriter
    ) -> None:
        batch = rows(3)
        writer.write([StoreMessages(NODE_A, batch)], 1.0)
        again = writer.write([StoreMessages(NODE_A, batch[:2] + rows(1))], 2.0)
        assert again[0].inserted == 1
        assert store.query_messages(MessageQuery()).total == 4

    def test_a_known_batch_id_is_reported_repeated_and_its_new_messages_still_stored(
        self, store: MessageStore, writer: StoreWriter
    ) -> None:
        batch = rows(2)
        first = writer.write([StoreMessages(NODE_A, batch, "b-1")], 1.0)[0]
        again = writer.write([StoreMessages(NODE_A, batch, "b-1")], 2.0)[0]
        grown = writer.write([StoreMessages(NODE_A, batch + rows(2), "b-1")], 3.0)[0]
        assert (first.inserted, first.repeated) == (2, False)
        assert (again.inserted, again.repeated) == (0, True)
        assert (grown.inserted, grown.repeated) == (2, True)
        assert store.query_messages(MessageQuery()).total == 4

    def test_one_write_call_is_all_or_nothing(
        self, store: MessageStore, writer: StoreWriter
    ) -> None:
        record = FileRecord("f-1", "agent-1", NODE_A, None, "a.txt", 1, "0" * 64, "files/a/f-1")
        writer.write([StoreFile(record)], 1.0)
        with pytest.raises(StoreUnavailable):
            writer.write([StoreMessages(NODE_A, rows(3)), StoreFile(record)], 2.0)
        assert store.query_messages(MessageQuery()).total == 0

    def test_queries_filter_order_and_continue_after_a_keyset_position(
        self, store: MessageStore, writer: StoreWriter
    ) -> None:
        writer.write([StoreMessages(NODE_A, rows(4, agent_id="x") + rows(2, agent_id="y"))], 1.0)
        only_x = MessageQuery(filters=(("agent_id", ("x",)),), limit=3)
        page = store.query_messages(only_x)
        assert (page.total, len(page.messages), page.has_more) == (4, 3, True)
        assert page.last_id is not None
        rest = store.query_messages(
            MessageQuery(filters=only_x.filters, limit=3, after_id=page.last_id)
        )
        assert (len(rest.messages), rest.has_more) == (1, False)
        seen = [m["msg_id"] for m in page.messages + rest.messages]
        oldest_first = store.query_messages(MessageQuery(filters=only_x.filters, descending=False))
        assert seen == [m["msg_id"] for m in oldest_first.messages][::-1]

    def test_a_status_report_replaces_the_previous_one(
        self, store: MessageStore, writer: StoreWriter
    ) -> None:
        writer.write([StoreStatus(NODE_A, 1.0, ({"agent_id": "a", "outbox_depth": 5},))], 1.0)
        writer.write([StoreStatus(NODE_A, 2.0, ())], 2.0)
        assert store.node_statuses() == [
            {"node_id": NODE_A, "sent_at": 2.0, "received_at": 2.0, "agents": []}
        ]

    def test_a_file_record_reads_back(self, store: MessageStore, writer: StoreWriter) -> None:
        record = FileRecord("f-2", "agent-1", NODE_A, "m-1", None, 10, "a" * 64, "files/x/f-2")
        writer.write([StoreFile(record)], 5.0)
        got = store.get_file("f-2")
        assert got == replace(record, received_at=5.0)
        assert store.get_file("nope") is None
        assert store.get_message("nope") is None


class TestSqliteStore(StoreContract):
    """The contract on SQLite in tmp_path."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[MessageStore]:
        """A fresh SQLite store."""
        store = SqliteStore(tmp_path)
        yield store
        store.close()

    def test_the_schema_is_migrated_once_and_reopening_keeps_the_data(
        self, tmp_path: Path, store: MessageStore, writer: StoreWriter
    ) -> None:
        writer.write([StoreMessages(NODE_A, rows(2))], 1.0)
        again = SqliteStore(tmp_path)
        try:
            assert again.query_messages(MessageQuery()).total == 2
        finally:
            again.close()
