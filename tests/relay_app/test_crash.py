"""kill -9 during a stream of batches: after a restart every acked batch is there, whole."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import requests

from tests.relay_app.helpers import NODE_A, TOKENS, batch, message, write_config
from tests.support import Daemon, wait_for

SENDERS = 3
BATCH_SIZE = 50


def start_relay(config: Path, data: Path, log: Path) -> Daemon:
    """The relay as its own process, exactly as the console script runs it."""
    args = ["-m", "relay_app.cli", "serve", "--config", str(config)]
    return Daemon([*args, "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data)], log)


class Stream:
    """Senders posting batches until the relay dies; what was sent and what was acked."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: dict[str, list[str]] = {}
        self.bodies: dict[str, dict[str, object]] = {}
        self.acked: set[str] = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send) for _ in range(SENDERS)]

    def _send(self) -> None:
        session = requests.Session()
        session.headers.update(
            {"X-Commander-Node": NODE_A, "Authorization": f"Bearer {TOKENS[NODE_A]}"}
        )
        try:
            for n in range(10_000):
                envs = [message(content={"n": n, "pad": "x" * 200}) for _ in range(BATCH_SIZE)]
                batch_id = f"{threading.get_ident()}-{n}"
                body = batch(envs, batch_id)
                with self.lock:
                    self.sent[batch_id] = [e.msg_id for e in envs]
                    self.bodies[batch_id] = body
                try:
                    response = session.post(self.url + "/sync/messages", json=body, timeout=10)
                except requests.RequestException:
                    return  # the relay is gone
                if response.status_code == 200:
                    with self.lock:
                        self.acked.add(batch_id)
        finally:
            session.close()


def test_every_acked_batch_survives_kill_9_whole(tmp_path: Path) -> None:
    config, data = write_config(tmp_path / "config"), tmp_path / "data"
    relay = start_relay(config, data, tmp_path / "relay.log")
    stream = Stream(relay.url)
    for thread in stream.threads:
        thread.start()
    try:
        wait_for(lambda: len(stream.acked) >= 60, timeout=30)
    finally:
        relay.kill()  # SIGKILL while the senders are mid-request
        for thread in stream.threads:
            thread.join(30)
    sent, acked = dict(stream.sent), set(stream.acked)
    assert len(sent) > len(acked), "no batch was in flight when the relay died"

    restarted = start_relay(config, data, tmp_path / "relay-2.log")
    try:
        stored, batches = _stored(data)
        for batch_id in acked:
            assert set(sent[batch_id]) <= stored, f"acked batch {batch_id} lost messages"
            assert batch_id in batches
        for batch_id, ids in sent.items():
            present = len(set(ids) & stored)
            assert present in (0, len(ids)), f"batch {batch_id} is half stored"
        first = sorted(acked)[0]
        _resend_is_acked_without_new_rows(restarted.url, stream.bodies[first], len(stored))
    finally:
        assert restarted.terminate() == 0


def _stored(data: Path) -> tuple[set[str], set[str]]:
    path = data / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {r[0] for r in conn.execute("SELECT msg_id FROM messages")}
        batches = {r[0] for r in conn.execute("SELECT batch_id FROM batches")}
    finally:
        conn.close()
    return stored, batches


def _resend_is_acked_without_new_rows(url: str, body: dict[str, object], count: int) -> None:
    """A node that missed the ack resends the batch: same ack, no new rows."""
    headers = {"X-Commander-Node": NODE_A, "Authorization": f"Bearer {TOKENS[NODE_A]}"}
    response = requests.post(url + "/sync/messages", json=body, headers=headers, timeout=10)
    assert response.json() == {"status": "acked", "batch_id": body["batch_id"]}
    query = requests.get(url + "/query/messages", params={"limit": 1}, headers=headers, timeout=10)
    assert query.json()["total"] == count
