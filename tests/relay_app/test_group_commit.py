"""Group commit at the relay: HTTP requests that overlap share one transaction (one fsync)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from relay_app.store import WriteOp, WriteResult
from relay_app.stores.sqlite import SqliteStore, SqliteWriter
from tests.relay_app.conftest import RelayFactory
from tests.relay_app.helpers import NodeClient, message, stored_msg_ids
from tests.support import wait_for

OVERLAPPING = 12


class HeldWriter:
    """The real writer, whose first transaction waits until released: a slow disk."""

    def __init__(self, inner: SqliteWriter, entered: threading.Event, release: threading.Event):
        self.inner = inner
        self.entered = entered
        self.release = release

    def write(self, ops: Sequence[WriteOp], received_at: float) -> list[WriteResult]:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(10)
        return self.inner.write(ops, received_at)

    def close(self) -> None:
        self.inner.close()


class HeldStore(SqliteStore):
    """The SQLite store with a writer that holds its first commit."""

    def __init__(self, data_dir: str) -> None:
        super().__init__(data_dir)
        # Made here, not with the writer: the IngestActor opens that in its own thread,
        # maybe after the test has begun to wait.
        self.entered = threading.Event()
        self.release = threading.Event()

    def open_writer(self) -> Any:
        return HeldWriter(super().open_writer(), self.entered, self.release)


def figures(url: str) -> dict[str, float]:
    """The relay's unlabelled /metrics samples by name."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def commit_counts(url: str) -> tuple[float, float]:
    """(transactions, write requests) from the relay's /metrics."""
    values = figures(url)
    return values["commander_relay_transactions_total"], values[
        "commander_relay_write_requests_total"
    ]


def test_requests_that_arrive_during_a_commit_share_the_next_transaction(
    relay_factory: RelayFactory, data_dir: Path
) -> None:
    store = HeldStore(str(data_dir))
    relay = relay_factory(store=store)
    clients = [NodeClient(relay.url) for _ in range(OVERLAPPING + 1)]
    envelopes = [message(content={"n": n}) for n in range(OVERLAPPING + 1)]
    with ThreadPoolExecutor(OVERLAPPING + 1) as pool:
        first = pool.submit(clients[0].send, envelopes[0])
        assert store.entered.wait(10)
        rest = [pool.submit(c.send, e) for c, e in zip(clients[1:], envelopes[1:], strict=True)]
        # Every one of them is parsed and waiting for the writer before the first commits.
        queued = "commander_relay_ingest_queued"
        wait_for(lambda: figures(relay.url)[queued] == OVERLAPPING, timeout=10)
        store.release.set()
        answers = [first.result(30), *(f.result(30) for f in rest)]
    assert [a.status_code for a in answers] == [200] * (OVERLAPPING + 1)
    assert commit_counts(relay.url) == (2, OVERLAPPING + 1)
    assert sorted(stored_msg_ids(data_dir)) == sorted(e.msg_id for e in envelopes)
    for client in clients:
        client.close()


def test_requests_one_after_another_each_commit_alone(relay_factory: RelayFactory) -> None:
    relay = relay_factory()
    client = NodeClient(relay.url)
    for n in range(3):
        assert client.send(message(content={"n": n})).status_code == 200
    assert commit_counts(relay.url) == (3, 3)
    client.close()
