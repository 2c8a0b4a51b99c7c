"""Cluster-wide visibility and backlog drain.

    python -m bench visibility [--quick]

1. Time from an agent's write returning on a node to the message being returned by
   GET /query/messages/<msg_id> from another client, beside the bare HTTP round trip
   (GET /healthz) to the same relay in the same run.
2. Time from an agent's write returning on node A to `receive` returning it to an
   agent of node B (the relay's long poll, node B's mail store): `receive_p99_ms`.
3. A backlog built while the relay was down, and the rate at which it drains.

The relay runs as its own process; the node runs in this one.
Last line: {"visible_p50_ms", "visible_p99_ms", "receive_p99_ms", "http_floor_p50_ms",
"drain_msgs_per_s", ...}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

from bench.tools.stats import percentile
from runtime.core.config import SyncConfig
from runtime.node.node import Node, NodeOptions
from tests.support import TOKENS, Daemon, cluster, free_port, start_relay, write_config_dir

HEADERS = {"X-Commander-Node": "node-b", "Authorization": f"Bearer {TOKENS['node-b']}"}


def measure_visibility(node: Node, relay_url: str, count: int) -> tuple[list[float], list[float]]:
    """Per message: write, then poll the relay from another session until it answers."""
    agent = node.agent("a1")
    reader = requests.Session()
    visible, floor = [], []
    for i in range(count + 50):
        start = time.perf_counter()
        reader.get(f"{relay_url}/healthz", timeout=5)
        floor_s = time.perf_counter() - start
        msg_id = agent.write({"seq": i, "text": "visibility probe"})
        written = time.perf_counter()
        while (
            reader.get(
                f"{relay_url}/query/messages/{msg_id}", headers=HEADERS, timeout=5
            ).status_code
            != 200
        ):
            if time.perf_counter() - written > 10:
                raise RuntimeError(f"{msg_id} not visible after 10 s")
        if i >= 50:  # warm-up excluded
            visible.append(time.perf_counter() - written)
            floor.append(floor_s)
    reader.close()
    return visible, floor


def measure_receive(node_a: Node, node_b: Node, count: int) -> list[float]:
    """Per message: a1 on node A writes to b1, then b1 on node B receives it."""
    sender, receiver = node_a.agent("a1"), node_b.agent("b1")
    while receiver.receive(timeout=0.5):  # whatever earlier runs left
        pass
    took = []
    for i in range(count + 20):
        msg_id = sender.write({"seq": i, "text": "receive probe"}, recipient="b1")
        written = time.perf_counter()
        got: list[str] = []
        while msg_id not in got:
            if time.perf_counter() - written > 10:
                raise RuntimeError(f"{msg_id} not received after 10 s")
            got = [m.msg_id for m in receiver.receive(timeout=10)]
        if i >= 20:  # warm-up excluded
            took.append(time.perf_counter() - written)
    return took


def measure_drain(
    node: Node, relay: Daemon, restart: Callable[[], None], count: int
) -> tuple[float, float]:
    """Build a backlog with the relay down, bring it back, time until every message is synced."""
    relay.kill()
    agents = [node.agent("a1"), node.agent("a2")]
    start = time.perf_counter()
    for i in range(count):
        agents[i % 2].write_nowait({"seq": i, "text": "backlog"})
    while sum(a.stats(timeout=60).unsynced_count for a in agents) < count:
        time.sleep(0.1)
    build_s = time.perf_counter() - start
    time.sleep(1.5)  # let the outboxes take everything in
    restart()
    start = time.perf_counter()
    while sum(a.stats(timeout=60).unsynced_count for a in agents) > 0:
        time.sleep(0.05)
    return build_s, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench visibility")
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    args = parser.parse_args(argv)
    count, backlog = (200, 10_000) if args.quick else (1000, 100_000)
    with tempfile.TemporaryDirectory(prefix="bench-visibility-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        # Production batch size; a short retry cap so the drain is not timed from a backoff.
        sync = SyncConfig(batch_size=500, interval_seconds=1.0, retry_cap_seconds=1.0)
        config = cluster(tmp / "relay", relay_port=port, sync=sync)
        config_dir = write_config_dir(tmp / "config", config)
        holder = {"relay": start_relay(config_dir, tmp / "relay", port, tmp / "relay.log")}
        relay_url = f"http://127.0.0.1:{port}"
        options = NodeOptions(
            data_dir=str(tmp / "node"), relay_url=relay_url, token=TOKENS["node-a"]
        )
        node = Node(config, "node-a", options).start()
        try:
            visible, floor = measure_visibility(node, relay_url, count)
            options_b = NodeOptions(
                data_dir=str(tmp / "node-b"), relay_url=relay_url, token=TOKENS["node-b"]
            )
            with Node(config, "node-b", options_b) as node_b:
                received = measure_receive(node, node_b, count // 2)

            def restart() -> None:
                holder["relay"] = start_relay(config_dir, tmp / "relay", port, tmp / "relay.log")

            build_s, drain_s = measure_drain(node, holder["relay"], restart, backlog)
        finally:
            node.stop()
            holder["relay"].terminate()
    result = {
        "messages": count,
        "visible_p50_ms": round(percentile(visible, 50) * 1000, 2),
        "visible_p99_ms": round(percentile(visible, 99) * 1000, 2),
        "receive_p50_ms": round(percentile(received, 50) * 1000, 2),
        "receive_p99_ms": round(percentile(received, 99) * 1000, 2),
        "http_floor_p50_ms": round(percentile(floor, 50) * 1000, 2),
        "http_floor_p99_ms": round(percentile(floor, 99) * 1000, 2),
        "backlog": backlog,
        "backlog_build_s": round(build_s, 2),
        "drain_s": round(drain_s, 2),
        "drain_msgs_per_s": round(backlog / drain_s),
    }
    print("targets: visible_p99_ms <= 10, receive_p99_ms <= 50, drain_msgs_per_s >= 10000")
    print(json.dumps(result))
    return 0
