"""What a running node tells its agent, Prometheus and the relay, read from real processes.

A full cache reaches the agent as CacheFull through the HTTP API; scraped metrics carry
the values a known series of writes implies; the node's status reports reach the relay.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from runtime.core.config import CacheConfig
from runtime.core.errors import CacheFull
from runtime.node.client import NodeAdmin, NodeClient
from tests.delivery.harness import relay_rows
from tests.support import (
    FAST_SYNC,
    TOKENS,
    Daemon,
    cluster,
    free_port,
    start_node,
    start_relay,
    wait_for,
    write_config_dir,
)

CACHE_LIMIT = 200_000


@dataclass
class Procs:
    """A relay and node-a as processes; the relay may be stopped and started again."""

    tmp: Path
    config: Path
    port: int
    node: Daemon
    relay: Daemon | None = None

    @property
    def relay_data(self) -> Path:
        """The relay's data directory."""
        return self.tmp / "relay"

    def start_relay(self) -> None:
        """Start the relay process on its port."""
        self.relay = start_relay(self.config, self.relay_data, self.port, self.tmp / "relay.log")

    def stop_relay(self) -> None:
        """SIGTERM the relay and wait for it."""
        if self.relay is not None:
            assert self.relay.terminate() == 0
            self.relay = None


def make_config(tmp_path: Path, port: int, a1_max_bytes: int = 10**9) -> Path:
    """Two agents (a1, a2) on node-a, a1's cache limited to `a1_max_bytes`."""
    base = cluster(tmp_path / "relay", relay_port=port, sync=FAST_SYNC)
    agents = tuple(
        replace(a, cache=CacheConfig(max_bytes=a1_max_bytes)) if a.agent_id == "a1" else a
        for a in base.agents
    )
    return write_config_dir(tmp_path / "config", replace(base, agents=agents))


def start_procs(tmp_path: Path, *, relay_first: bool, a1_max_bytes: int = 10**9) -> Procs:
    port = free_port()
    config = make_config(tmp_path, port, a1_max_bytes)
    procs = Procs(tmp_path, config, port, node=None)  # type: ignore[arg-type]
    if relay_first:
        procs.start_relay()
    relay_url = f"http://127.0.0.1:{port}"
    procs.node = start_node(config, "node-a", tmp_path / "a", relay_url, tmp_path / "node.log")
    return procs


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    running = start_procs(tmp_path, relay_first=True)
    try:
        yield running
    finally:
        running.node.terminate()
        if running.relay is not None:
            running.relay.terminate()


def scrape(url: str) -> dict[str, Any]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    """The one sample of `name` with these labels (never a _created twin)."""
    found = [
        s.value
        for s in families[name].samples
        if not s.name.endswith("_created") and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (name, labels, families[name].samples)
    return float(found[0])


def db_bytes(node_data: Path, agent_id: str) -> int:
    """Bytes of data pages in an agent's messages.db, read beside the running node."""
    path = node_data / "cache" / agent_id / "messages.db"
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return int((pages - free) * size)


def big() -> dict[str, str]:
    """Content that does not compress much, about 2 kB on disk."""
    return {"blob": secrets.token_hex(2000)}


def test_the_agent_sees_its_full_cache_through_the_api_and_writes_resume_once_room_is_made(
    tmp_path: Path,
) -> None:
    procs = start_procs(tmp_path, relay_first=False, a1_max_bytes=CACHE_LIMIT)
    client, other = NodeClient(procs.node.sockets, "a1"), NodeClient(procs.node.sockets, "a2")
    try:
        written = fill(client)
        with pytest.raises(CacheFull) as refused:
            client.write(big())
        assert (refused.value.agent_id, refused.value.limit_bytes) == ("a1", CACHE_LIMIT)
        assert "'a1'" in str(refused.value)
        assert f"limit {CACHE_LIMIT} bytes" in str(refused.value)
        health = requests.get(procs.node.url + "/healthz", timeout=10)
        assert health.status_code == 200
        assert other.write("a2 is not held back")
        procs.start_relay()  # the backlog syncs, so the oldest messages may be evicted
        accepted = write_once_room_is_made(client)
        assert client.read(accepted) is not None
        wait_for(lambda: set(written) <= relay_rows(procs.relay_data).keys(), timeout=30)
    finally:
        client.close()
        other.close()
        procs.node.terminate()
        if procs.relay is not None:
            procs.relay.terminate()


def fill(client: NodeClient) -> list[str]:
    """Write until the next write would not fit; return what was written."""
    written: list[str] = []
    for _ in range(CACHE_LIMIT // 1000):
        try:
            written.append(client.write(big()))
        except CacheFull:
            return written
    raise AssertionError(f"{len(written)} writes never filled a {CACHE_LIMIT}-byte cache")


def write_once_room_is_made(client: NodeClient, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return client.write(big())
        except CacheFull:
            time.sleep(0.2)
    raise AssertionError(f"the cache stayed full for {timeout}s after the relay came back")


def test_scraped_metrics_of_a_running_node_and_relay_have_the_values_the_writes_imply(
    procs: Procs,
) -> None:
    client = NodeClient(procs.node.sockets, "a1")
    assert procs.relay is not None
    sent_bytes = 0
    for _ in range(5):  # one at a time, so each travels alone by write-through
        msg_id = client.write(big())
        wait_for(lambda: on_relay(procs, msg_id), timeout=10)  # noqa: B023 - called right here
        stored = client.read(msg_id)
        assert stored is not None
        sent_bytes += len(orjson.dumps(stored.to_wire()))
    url = procs.node.url
    wait_for(lambda: value(scrape(url), "sync_lag_seconds") == 0.0, timeout=10)
    node = scrape(url)
    assert_cache_figures(node, procs.tmp / "a")
    for agent in ("a1", "a2"):
        assert value(node, "outbox_queue_depth", node="node-a", agent=agent) == 0
    assert value(node, "sync_failures", node="node-a") == 0
    relay = scrape(procs.relay.url)
    # Each message was sent once, alone: the bytes ingested are exactly those bodies.
    assert value(relay, "htpc_write_throughput_bytes") == sent_bytes, posts(relay)
    check_figures_while_the_relay_is_away(procs, client)
    client.close()


def posts(families: dict[str, Any]) -> list[tuple[str, str, float]]:
    """The relay's count of POST answers by route and status (what a mismatch shows)."""
    samples = families["commander_relay_requests"].samples
    return [
        (s.labels["route"], s.labels["status"], s.value)
        for s in samples
        if s.labels.get("method") == "POST" and not s.name.endswith("_created")
    ]


def on_relay(procs: Procs, msg_id: str) -> bool:
    """Whether the relay stored this message."""
    return msg_id in relay_rows(procs.relay_data)


def assert_cache_figures(families: dict[str, Any], node_data: Path) -> None:
    used = {a: value(families, "cache_bytes_used", node="node-a", agent=a) for a in ("a1", "a2")}
    assert used == {a: db_bytes(node_data, a) for a in ("a1", "a2")}
    assert used["a1"] > used["a2"] > 0  # a2 holds only its empty schema


def check_figures_while_the_relay_is_away(procs: Procs, client: NodeClient) -> None:
    procs.stop_relay()
    ids = [client.write({"offline": i}) for i in range(4)]
    first = client.read(ids[0])
    assert first is not None
    url = procs.node.url
    wait_for(lambda: value(scrape(url), "outbox_queue_depth", agent="a1") == 4, timeout=15)
    before = time.time()
    node = scrape(url)
    after = time.time()
    lag = value(node, "sync_lag_seconds", node="node-a")
    assert before - first.timestamp <= lag <= after - first.timestamp
    failures = value(node, "sync_failures", node="node-a")
    assert failures >= 1
    assert_cache_figures(node, procs.tmp / "a")
    procs.start_relay()
    wait_for(lambda: value(scrape(url), "outbox_queue_depth", agent="a1") == 0, timeout=30)
    wait_for(lambda: value(scrape(url), "sync_lag_seconds") == 0.0, timeout=10)
    assert value(scrape(url), "sync_failures", node="node-a") >= failures
    assert set(ids) <= relay_rows(procs.relay_data).keys()


def relay_view(procs: Procs) -> dict[str, Any]:
    """node-a's last report as the relay shows it, {} before the first."""
    assert procs.relay is not None
    headers = {"X-Commander-Node": "node-a", "Authorization": f"Bearer {TOKENS['node-a']}"}
    response = requests.get(f"{procs.relay.url}/query/status", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    nodes = {n["node_id"]: n for n in response.json()["nodes"]}
    return dict(nodes.get("node-a", {}))


def node_view(procs: Procs) -> dict[str, dict[str, Any]]:
    """Each agent's figures as the node itself shows them on /status."""
    status = NodeAdmin(procs.node.sockets).status()
    return {a["agent_id"]: a for a in status["agents"]}


def test_the_running_nodes_status_reports_reach_the_relay(procs: Procs) -> None:
    client = NodeClient(procs.node.sockets, "a1")
    started = time.time()
    ids = [client.write({"report": i}) for i in range(3)]
    client.close()
    wait_for(lambda: set(ids) <= relay_rows(procs.relay_data).keys(), timeout=10)

    def reported() -> bool:
        agents = {a["agent_id"]: a for a in relay_view(procs).get("agents", [])}
        own = node_view(procs)
        return (
            set(agents) == {"a1", "a2"}
            and all(
                agents[a]["cache_bytes_used"] == own[a]["cache"]["bytes_used"]
                and agents[a]["outbox_depth"] == 0
                for a in agents
            )
            and (agents["a1"]["last_sync_at"] or 0) >= started
        )

    wait_for(reported, timeout=20, step=0.25)  # reports go every 5 s
    view = relay_view(procs)
    assert started <= view["sent_at"] <= view["received_at"] <= time.time()
    assert {a["agent_id"]: a["cache_max_bytes"] for a in view["agents"]} == {
        "a1": 10**9,
        "a2": 10**9,
    }
