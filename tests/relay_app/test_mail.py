"""GET /sync/mail: a node's long poll answers new mail at once and holds no thread waiting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from relay_app.server import RelayServer
from runtime.core.config import AgentConfig
from tests.relay_app.conftest import RelayFactory
from tests.relay_app.helpers import NODE_A, NODE_B, TOKENS, NodeClient, make_config, message
from tests.support import Daemon

# Every test that starts a relay runs on both engines (tests/relay_app/conftest.py).
STORE_ENGINES = ("sqlite", "postgres")


def _headers(node_id: str) -> dict[str, str]:
    return {"X-Commander-Node": node_id, "Authorization": f"Bearer {TOKENS[node_id]}"}


def _poll(url: str, node_id: str, **params: Any) -> requests.Response:
    return requests.get(f"{url}/sync/mail", params=params, headers=_headers(node_id), timeout=30)


def test_a_waiting_poll_answers_a_message_stored_after_it_began(
    relay: RelayServer, node_a: NodeClient
) -> None:
    before = node_a.send(message(recipient="agent-9", content={"n": 0}))
    assert before.status_code == 200
    first = _poll(relay.url, NODE_A, **{"for": "agent-9", "wait": "0"}).json()
    assert [m["content"] for m in first["messages"]] == [{"n": 0}]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            _poll,
            relay.url,
            NODE_A,
            **{"for": "agent-9", "wait": "10", "after": str(first["cursor"])},
        )
        time.sleep(0.3)
        sent = time.monotonic()
        node_a.send(message(recipient="agent-9", content={"n": 1}))
        answer = waiting.result(timeout=10).json()
    assert time.monotonic() - sent < 1.0
    assert [m["content"] for m in answer["messages"]] == [{"n": 1}]
    assert answer["cursor"] > first["cursor"]
    # One answer per poll in the metrics, however often a parked poll was run.
    metrics = requests.get(f"{relay.url}/metrics", timeout=10).text
    counted = 'commander_relay_requests_total{method="GET",route="/sync/mail",status="200"} 2.0'
    assert counted in metrics


def test_a_poll_with_nothing_new_answers_empty_when_its_wait_runs_out(relay: RelayServer) -> None:
    start = time.monotonic()
    answer = _poll(relay.url, NODE_A, **{"for": "nobody", "wait": "0.5", "after": "7"})
    assert answer.status_code == 200
    assert answer.json() == {"messages": [], "cursor": 7}
    assert 0.45 <= time.monotonic() - start < 3.0


def test_a_waiting_poll_is_answered_at_once_when_the_relay_stops(
    relay_factory: RelayFactory,
) -> None:
    relay = relay_factory()
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_poll, relay.url, NODE_A, **{"for": "agent-9", "wait": "25"})
        time.sleep(0.3)
        stopping = time.monotonic()
        relay.stop()
        answer = waiting.result(timeout=30)
    assert time.monotonic() - stopping < 3.0
    assert answer.status_code == 200
    assert answer.json()["messages"] == []


def test_a_node_token_cannot_read_another_nodes_agents_mail(
    relay_factory: RelayFactory, data_dir: Path
) -> None:
    agents = (
        AgentConfig(agent_id="agent-1", role="coder", node_id=NODE_A),
        AgentConfig(agent_id="agent-b1", role="scout", node_id=NODE_B),
    )
    relay = relay_factory(make_config(data_dir, agents))
    theirs = _poll(relay.url, NODE_B, **{"for": ["agent-b1", "agent-1"], "wait": "0"})
    role = _poll(relay.url, NODE_B, **{"for": "coder", "wait": "0"})
    own = _poll(relay.url, NODE_B, **{"for": ["agent-b1", "scout"], "wait": "0"})
    assert theirs.status_code == role.status_code == 403
    assert "agent-1" in theirs.json()["error"]
    assert own.status_code == 200
    assert _poll(relay.url, NODE_B, **{"for": "x", "wait": "99"}).status_code == 400


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def test_twenty_five_waiting_polls_cost_the_relay_process_no_thread_each(
    relay_process: Daemon,
) -> None:
    url, pid = relay_process.url, relay_process.proc.pid
    _poll(url, NODE_A, **{"for": "agent-1", "wait": "0"})  # the pool's first thread is up
    before = _threads(pid)
    started = threading.Barrier(26)

    def wait() -> requests.Response:
        started.wait()
        return _poll(url, NODE_A, **{"for": "agent-1", "wait": "3", "after": "0"})

    with ThreadPoolExecutor(25) as pool:
        polls = [pool.submit(wait) for _ in range(25)]
        started.wait()
        began = time.monotonic()
        time.sleep(1.0)  # every poll is in and parked
        during = _threads(pid)
        answers = [p.result(timeout=30) for p in polls]
        # Blocking its 16 workers, the relay would answer the last 9 polls 3 s late.
        elapsed = time.monotonic() - began
    assert [a.status_code for a in answers] == [200] * 25
    # The pool grows lazily to as many workers as ran the polls' first look at once (at
    # most its 16); parked, the 25 polls hold none of them, which the time shows: blocking
    # 16 workers, the relay would answer the last 9 polls 3 s late.
    print(f"relay threads: {before} before, {during} with 25 polls parked")
    assert during - before <= 16, (before, during)
    assert elapsed < 5.0
