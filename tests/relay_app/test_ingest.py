"""IngestActor: one transaction for every write waiting in its inbox, each answered after it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pykka
import pytest

from relay_app.errors import StorageFull, StoreUnavailable
from relay_app.ingest import Ingest, IngestActor
from relay_app.store import (
    MessageQuery,
    StoreMessages,
    StoreStatus,
    StoreWriter,
    WriteOp,
    WriteResult,
)
from relay_app.stores.sqlite import SqliteStore
from relay_app.validate import message_row
from tests.relay_app.helpers import NODE_A, message


class GatedWriter:
    """A writer that records each transaction and holds the first until released."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.groups: list[list[WriteOp]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail_with = fail_with

    def write(self, ops: Sequence[WriteOp], received_at: float) -> list[WriteResult]:
        self.entered.set()
        self.release.wait(10)
        self.groups.append(list(ops))
        if self.fail_with is not None and len(ops) > 1:
            raise self.fail_with
        return [WriteResult(inserted=1) for _ in ops]

    def close(self) -> None:
        pass


class GatedStore:
    """Only what the IngestActor needs from a store."""

    def __init__(self, writer: GatedWriter) -> None:
        self.writer = writer

    def open_writer(self) -> StoreWriter:
        return self.writer


def status(n: int) -> StoreStatus:
    return StoreStatus(NODE_A, float(n), ())


def test_writes_queued_behind_a_commit_share_the_next_transaction() -> None:
    writer = GatedWriter()
    ref = IngestActor.start(GatedStore(writer))  # type: ignore[arg-type]
    first = ref.ask(status(0), block=False)
    assert writer.entered.wait(5)
    waiting = [ref.ask(status(n), block=False) for n in range(1, 21)]
    writer.release.set()
    assert first.get(timeout=5) == WriteResult(inserted=1)
    assert all(f.get(timeout=5) == WriteResult(inserted=1) for f in waiting)
    assert [len(g) for g in writer.groups] == [1, 20]
    ref.stop()


def test_a_message_that_is_not_a_write_ends_the_group_and_keeps_its_place() -> None:
    writer = GatedWriter()
    ref = IngestActor.start(GatedStore(writer))  # type: ignore[arg-type]
    ref.ask(status(0), block=False)
    assert writer.entered.wait(5)
    before = [ref.ask(status(n), block=False) for n in (1, 2)]
    stop = ref.stop(block=False)
    after = ref.ask(status(3), block=False)
    writer.release.set()
    assert all(f.get(timeout=5) == WriteResult(inserted=1) for f in before)
    stop.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        after.get(timeout=5)
    assert [len(g) for g in writer.groups] == [1, 2]


def test_a_failed_group_is_retried_one_by_one_so_neighbours_still_commit() -> None:
    writer = GatedWriter(fail_with=StoreUnavailable("boom"))
    ingest = Ingest(IngestActor.start(GatedStore(writer)))  # type: ignore[arg-type]
    ref: Any = ingest._ref
    first = ref.ask(status(0), block=False)
    assert writer.entered.wait(5)
    waiting = [ref.ask(status(n), block=False) for n in (1, 2, 3)]
    writer.release.set()
    assert first.get(timeout=5) == WriteResult(inserted=1)
    assert all(f.get(timeout=5) == WriteResult(inserted=1) for f in waiting)
    assert [len(g) for g in writer.groups] == [1, 3, 1, 1, 1]
    ingest.stop()


def test_a_full_disk_answers_every_request_of_the_group_with_storage_full() -> None:
    writer = GatedWriter(fail_with=StorageFull("disk full"))
    ingest = Ingest(IngestActor.start(GatedStore(writer)))  # type: ignore[arg-type]
    ref: Any = ingest._ref
    ref.ask(status(0), block=False)
    assert writer.entered.wait(5)
    waiting = [ref.ask(status(n), block=False) for n in (1, 2)]
    writer.release.set()
    assert all(isinstance(f.get(timeout=5), StorageFull) for f in waiting)
    assert [len(g) for g in writer.groups] == [1, 2]  # no retry one by one: the disk is full
    ingest.stop()


def test_submit_returns_after_the_commit_and_reports_a_stopped_actor(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    ingest = Ingest.start(store)
    row = message_row(message().to_wire(), NODE_A)
    assert ingest.submit(StoreMessages(NODE_A, (row,))) == WriteResult(inserted=1)
    assert store.query_messages(MessageQuery()).total == 1
    ingest.stop()
    with pytest.raises(StoreUnavailable):
        ingest.submit(StoreMessages(NODE_A, (row,)))
    store.close()
