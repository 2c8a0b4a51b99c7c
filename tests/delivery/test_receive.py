"""Agents receive their mail through their node, from real relay and node processes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from runtime.core.envelope import MessageEnvelope
from runtime.node.client import NodeClient
from tests.contract.conftest import OPERATOR_PASSWORD, write_cluster
from tests.support import TOKENS, Daemon, free_port, start_node, start_relay

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Cluster:
    """A relay and node-a as processes; node-a can be killed and started again."""

    root: Path
    config_dir: Path
    relay: Daemon
    node: Daemon | None = None

    def start_node(self) -> Daemon:
        """Start node-a on its data directory (kept across restarts)."""
        self.node = start_node(
            self.config_dir, "node-a", self.root / "node-a", self.relay.url, self.root / "node.log"
        )
        return self.node

    def client(self) -> NodeClient:
        """Agent a1's client over its Unix socket."""
        assert self.node is not None
        return NodeClient(self.node.sockets, "a1")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Cluster]:
    config_dir = write_cluster(tmp_path)
    relay = start_relay(config_dir, tmp_path / "relay", free_port(), tmp_path / "relay.log")
    cluster = Cluster(tmp_path, config_dir, relay)
    try:
        cluster.start_node()
        yield cluster
    finally:
        if cluster.node is not None:
            cluster.node.kill()
        relay.kill()


def _from_node_b(relay_url: str, n: int) -> str:
    """Agent b1 of node-b writes to a1 straight at the relay; returns the msg_id."""
    message = MessageEnvelope.new(agent_id="b1", node_id="node-b", content={"n": n}, recipient="a1")
    headers = {"X-Commander-Node": "node-b", "Authorization": f"Bearer {TOKENS['node-b']}"}
    answer = requests.post(
        f"{relay_url}/sync/message", json=message.to_wire(), headers=headers, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return message.msg_id


def _operator(relay_url: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    login = {"user": "operator", "password": OPERATOR_PASSWORD, "next": "/messages"}
    assert session.post(f"{relay_url}/messages/login", data=login, timeout=10).status_code == 200
    found = CSRF_RE.search(session.get(f"{relay_url}/messages", timeout=10).text)
    assert found is not None
    return session, found.group(1)


def _receive(client: NodeClient, count: int) -> list[str]:
    """msg_ids of the next `count` messages, over as many batches as they come in."""
    got: list[str] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        got += [m.msg_id for m in client.receive(timeout=1)]
    return got


def _stored(relay_url: str, msg_id: str) -> bool:
    headers = {"X-Commander-Node": "node-a", "Authorization": f"Bearer {TOKENS['node-a']}"}
    answer = requests.get(f"{relay_url}/query/messages/{msg_id}", headers=headers, timeout=10)
    return answer.status_code == 200


def test_execute_in_the_inbox_reaches_the_agent_through_its_node_within_a_second(
    running: Cluster,
) -> None:
    client = running.client()
    report = client.write({"title": "hot lead", "summary": "ACME wants a demo"})
    deadline = time.monotonic() + 10
    while not _stored(running.relay.url, report) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.receive(timeout=0) == []
    operator, csrf = _operator(running.relay.url)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.receive, 10.0)
        time.sleep(0.5)  # the agent waits; its node's poll is parked at the relay
        clicked = time.monotonic()
        form = {"csrf": csrf, "action": "execute", "msg_id": report}
        done = operator.post(f"{running.relay.url}/messages/actions", data=form, timeout=10)
        received = waiting.result(timeout=10)
        took = time.monotonic() - clicked
    assert done.status_code == 200
    assert took < 1.0, took
    assert [m.recipient for m in received] == ["a1"]
    assert received[0].content["in_reply_to"] == report
    follow_up = received[0].msg_id
    reply = client.write({"in_reply_to": follow_up, "text": "demo booked"}, recipient="operator")
    deadline = time.monotonic() + 10
    while not _stored(running.relay.url, reply) and time.monotonic() < deadline:
        time.sleep(0.05)
    page = operator.get(f"{running.relay.url}/messages/m/{report}", timeout=10).text
    thread = page[page.index('id="thread"') :]
    assert thread.index(follow_up) < thread.index(reply)  # the report's thread, in order
    assert "demo booked" in thread


@pytest.mark.parametrize("stop", ["kill -9", "SIGTERM"])
def test_receive_survives_a_node_restart_without_loss_or_repeat(
    running: Cluster, stop: str
) -> None:
    first = [_from_node_b(running.relay.url, n) for n in range(3)]
    client = running.client()
    assert _receive(client, 3) == first  # the last batch handed out, not yet acknowledged
    assert running.node is not None
    running.node.kill() if stop == "kill -9" else running.node.terminate()
    later = [_from_node_b(running.relay.url, n) for n in range(3, 5)]  # while the node is down
    running.start_node()
    client.close()
    again = NodeClient(running.node.sockets if running.node else "", "a1")
    again.cursor = client.cursor  # the same agent, carrying on where it was
    assert _receive(again, 2) == later  # the last batch acknowledged by asking again, none lost
    again.ack()
    fresh = running.client()  # an agent process started anew: nothing is repeated
    assert fresh.receive(timeout=0.3) == []


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def test_twenty_five_waiting_receives_cost_the_node_no_thread_each(running: Cluster) -> None:
    assert running.node is not None
    pid = running.node.proc.pid
    clients = [running.client() for _ in range(25)]
    clients[0].receive(timeout=0)  # the front's first worker is up
    before = _threads(pid)
    with ThreadPoolExecutor(25) as pool:
        began = time.monotonic()
        waits = [pool.submit(c.receive, 3.0) for c in clients]
        time.sleep(1.0)
        during = _threads(pid)
        assert [w.result(timeout=30) for w in waits] == [[]] * 25
        elapsed = time.monotonic() - began
    print(f"node threads: {before} before, {during} with 25 receives parked")
    # The pool grows lazily, at most to its 16 workers, with the receives' first looks at
    # once; the time is what tells parked from blocked.
    assert during - before <= 16, (before, during)
    assert elapsed < 5.0  # 16 blocked workers would answer the last 9 three seconds late
