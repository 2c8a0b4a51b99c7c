"""Three relay processes on one PostgreSQL database: writers on all three at once, one node polling
GET /sync/mail round-robin across them, sees every message exactly once.

The trap this guards against (relay_app/stores/postgres_follow.py): with several
writers, an id taken first can commit last, and a reader that goes on from "the highest
id seen" passes it for ever. A naive follower reading the table by id runs beside the
poller to show the trap was there: it misses rows that the relays' poller does not.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.relay_app.helpers import NODE_A, NodeClient, batch, message, write_config
from tests.support import TOKENS, Daemon

RELAYS = 3
WRITERS = 6
PER_WRITER = 350  # 2,100 messages in all (then 6,300 GETs of one message: most of the time)
BATCH_SIZES = (1, 1, 2, 5, 10, 25)  # 1: POST /sync/message, more: POST /sync/messages
RECIPIENTS = ("agent-1", "agent-2")  # node-a's agents in write_config
DEADLINE_S = 90.0
POLL_WAIT_S = "0.2"
POLL_LIMIT = "500"


@pytest.fixture
def relays(tmp_path: Path, postgres_dsn: str) -> Iterator[list[Daemon]]:
    """Three `commander-relay serve --store <dsn>` processes, each its own data directory."""
    config = write_config(tmp_path / "config")

    def serve(i: int) -> Daemon:
        args = ["-m", "relay_app.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
                "--port", "0", "--data-dir", str(tmp_path / f"relay-{i}"),
                "--store", postgres_dsn]  # fmt: skip
        return Daemon(args, tmp_path / f"relay-{i}.log")

    with ThreadPoolExecutor(RELAYS) as pool:
        started = list(pool.map(serve, range(RELAYS)))
    try:
        yield started
    finally:
        for relay in started:
            assert relay.terminate() == 0


def write(relays: list[Daemon], writer: int, deadline: float) -> list[str]:
    """Send PER_WRITER messages, each request to the next relay; return the acked ids."""
    clients = [NodeClient(relay.url, NODE_A) for relay in relays]
    rng = random.Random(writer)
    acked: list[str] = []
    try:
        for request in range(PER_WRITER):
            if len(acked) >= PER_WRITER or time.monotonic() > deadline:
                break
            client = clients[(writer + request) % len(clients)]
            size = min(rng.choice(BATCH_SIZES), PER_WRITER - len(acked))
            envs = [
                message(
                    recipient=rng.choice(RECIPIENTS), content={"w": writer, "n": len(acked) + i}
                )
                for i in range(size)
            ]
            if size == 1:
                response = client.send(envs[0])
            else:
                response = client.send_batch(batch(envs, f"writer-{writer}-{request}"))
            assert response.status_code == 200, response.text
            acked.extend(env.msg_id for env in envs)
    finally:
        for client in clients:
            client.close()
    return acked


class Poller:
    """A node following its agents' mail, each poll to the next relay, from the cursor the
    last answer gave."""

    def __init__(self, relays: list[Daemon]) -> None:
        self.urls = [relay.url for relay in relays]
        self.seen: list[str] = []
        self.cursors: list[int] = [0]
        self.session = requests.Session()
        self.session.headers["X-Commander-Node"] = NODE_A
        self.session.headers["Authorization"] = f"Bearer {TOKENS[NODE_A]}"

    def poll(self) -> int:
        """One poll; return how many messages it brought."""
        url = self.urls[len(self.cursors) % len(self.urls)]
        params: dict[str, Any] = {"for": RECIPIENTS, "after": self.cursors[-1], "wait": POLL_WAIT_S,
                  "limit": POLL_LIMIT}  # fmt: skip
        response = self.session.get(f"{url}/sync/mail", params=params, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        self.seen.extend(m["msg_id"] for m in body["messages"])
        self.cursors.append(int(body["cursor"]))
        return len(body["messages"])

    def follow(self, writing: threading.Event, deadline: float) -> None:
        """Poll while the writers write, then until a poll brings nothing."""
        while time.monotonic() < deadline:
            brought = self.poll()
            if not writing.is_set() and brought == 0:
                return


def follow_naively(dsn: str, writing: threading.Event, deadline: float) -> tuple[set[str], int]:
    """What a reader going on from the highest id it saw gets: the msg_ids it read, and
    the id it stopped at."""
    seen: set[str] = set()
    last = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while writing.is_set() and time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT id, msg_id FROM messages WHERE id > %s ORDER BY id LIMIT 1000", (last,)
            ).fetchall()
            seen.update(msg_id for _, msg_id in rows)
            last = rows[-1][0] if rows else last
            time.sleep(0.002)
    return seen, last


def stored_rows(dsn: str) -> list[tuple[int, str]]:
    """(id, msg_id) of every row in the database."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [(int(i), str(m)) for i, m in conn.execute("SELECT id, msg_id FROM messages")]


def test_a_node_polling_three_relays_in_turn_gets_every_message_of_concurrent_writers_once(
    relays: list[Daemon], postgres_dsn: str
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    writing = threading.Event()
    writing.set()
    poller = Poller(relays)
    with ThreadPoolExecutor(WRITERS + 2) as pool:
        following = pool.submit(poller.follow, writing, deadline)
        naive = pool.submit(follow_naively, postgres_dsn, writing, deadline)
        writers = [pool.submit(write, relays, w, deadline) for w in range(WRITERS)]
        try:
            acked = [msg_id for w in writers for msg_id in w.result()]
        finally:
            writing.clear()
        following.result()
        naively_seen, naive_last = naive.result()
    rows = stored_rows(postgres_dsn)
    stored = Counter(msg_id for _, msg_id in rows)
    # Rows at or below where the naive reader stopped that it never read: committed after
    # a row with a higher id, they were behind its cursor by the time they were visible.
    skipped_naively = {m for i, m in rows if i <= naive_last and m not in naively_seen}
    print(
        f"\nthree relays: acked={len(acked)} stored={len(stored)} polled={len(poller.seen)}"
        f" polls={len(poller.cursors) - 1} naive_follower_skipped={len(skipped_naively)}"
    )
    assert len(acked) == WRITERS * PER_WRITER
    assert stored == Counter(acked)  # each acked message stored once, nothing else
    assert Counter(poller.seen) == Counter(acked)  # every message polled, once
    assert poller.cursors == sorted(poller.cursors)
    assert skipped_naively, "no id committed out of order: the test did not set the trap"
    check_the_relays_answer_every_message(relays, acked)


def check_the_relays_answer_every_message(relays: list[Daemon], msg_ids: list[str]) -> None:
    """GET /query/messages/<msg_id> of every message, each asked of one relay in turn (a
    third each, whichever relay stored it): 200 with that message."""

    def ask(k: int) -> list[str]:
        relay = relays[k]
        client = NodeClient(relay.url, NODE_A)
        wrong = []
        try:
            for msg_id in msg_ids[k :: len(relays)]:
                response = client.get(f"/query/messages/{msg_id}")
                if response.status_code != 200 or msg_id not in response.text:
                    wrong.append(f"{relay.url} {msg_id}: {response.status_code}")
        finally:
            client.close()
        return wrong

    with ThreadPoolExecutor(len(relays)) as pool:
        wrong = [line for answers in pool.map(ask, range(len(relays))) for line in answers]
    assert not wrong, wrong[:5]
