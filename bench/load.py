"""Sustained sync load on the relay: 5 nodes x 5 agents, each writing 2 messages a second.

    python -m bench load [--quick] [--minutes M]

Every write goes through the real write-through path (agent API -> CacheActor commit ->
UploaderActor -> POST /sync/message), the nodes' outboxes tick and their MetricsActors
report status every 5 s, as in production. The relay runs as its own process; the five
nodes run in this process. What is measured is the relay, and a node's cost does not
land on it: five node daemons would add five interpreters and a loopback hop per write on
this 2-core machine, competing with the relay for CPU, without changing what the relay
receives.

From /proc/<relay pid>: CPU (utime + stime) over the load window as a share of one core,
beside the same relay idle for a while before the load (the floor); peak resident memory
(VmHWM); CPU microseconds per stored message. One agent's writes are also probes: after
each write returns, another client polls GET /query/messages/<msg_id> until it answers,
giving visibility under load (those polls are part of the relay's measured load).
5 minutes of load (1 minute with --quick), after a warm-up that is not counted.

Last line: {"relay_cpu_pct", "relay_rss_mb", "cpu_us_per_msg", "visible_p99_ms", ...}.
Targets, the relay's budget on the storage host at this load: relay_cpu_pct < 5 (percent
of one core), relay_rss_mb < 50.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.tools.stats import percentile
from relay_app.auth import token_sha256 as sha
from runtime.core.config import AgentConfig, CacheConfig, ClusterConfig, NodeEntry, RelaySettings
from runtime.node.agent import AgentHandle
from runtime.node.node import Node, NodeOptions
from tests.support import (
    CpuWindow,
    RssSampler,
    free_port,
    peak_rss_mb,
    rss_mb,
    start_relay,
    write_config_dir,
)

NODES = tuple(f"n{k}" for k in range(1, 6))
AGENTS_PER_NODE = 5
RATE_PER_AGENT = 2.0
TOKENS = {n: f"load-token-of-{n}-0123456789abcdef" for n in NODES}
PROBE_NODE, PROBE_AGENT = "n1", "n1a0"
MAX_PROBE_RATE = 10.0
CONTENT_TEXT = "found a lead: ACME corp, contact through the site form; score follows. "


def load_cluster(data_dir: Path, relay_port: int) -> ClusterConfig:
    """Five nodes of five agents each, production sync settings, a relay in data_dir."""
    nodes = (
        NodeEntry("htpc", "127.0.0.1", relay_port, role="storage"),
        *(NodeEntry(n, "127.0.0.1", 9, token_sha256=sha(TOKENS[n])) for n in NODES),
    )
    agents = tuple(
        AgentConfig(f"{n}a{j}", "recruiter", n, cache=CacheConfig(max_bytes=10**9))
        for n in NODES
        for j in range(AGENTS_PER_NODE)
    )
    return ClusterConfig(
        nodes=nodes, relay=RelaySettings(data_dir=str(data_dir), min_free_bytes=1), agents=agents
    )


@dataclass(frozen=True)
class Pace:
    """What the agents write: messages a second per agent, and the text each carries."""

    rate_per_agent: float = RATE_PER_AGENT
    text: str = CONTENT_TEXT
    # The nodes' caches: FULL as in production, or NORMAL where the nodes only generate load
    # and an fsync per local write would cap the rate they can drive on a small machine.
    node_synchronous: str = "FULL"


class Writers:
    """The agents' writes at a steady pace: one thread per agent, as agents run."""

    def __init__(
        self, agents: list[AgentHandle], probe: AgentHandle, relay_url: str, pace: Pace
    ) -> None:
        self.probe = probe
        self.relay_url = relay_url
        self.pace = pace
        self.stop = threading.Event()
        self.counts: dict[str, int] = {"probe": 0}
        self.probe_gets = 0  # the probe's polls are relay load too: reported beside the CPU
        self.late = 0
        self.visible: list[float] = []
        self.threads = [threading.Thread(target=self._probe, name="load-probe")]
        for k, agent in enumerate(agents):
            self.counts[agent.agent_id] = 0
            offset = k / len(agents)  # agents start spread over one step, not all at once
            self.threads.append(
                threading.Thread(target=self._paced, args=(agent, offset), name=f"load-{k}")
            )

    @property
    def written(self) -> int:
        """Writes committed so far (each counter has one writing thread)."""
        return sum(self.counts.values())

    def start(self) -> Writers:
        """Start every thread."""
        for thread in self.threads:
            thread.start()
        return self

    def finish(self) -> None:
        """Stop writing and wait for every thread."""
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _paced(self, agent: AgentHandle, offset: float) -> None:
        """One agent's writes at its pace, each waiting for its commit; late writes catch up."""
        step = 1 / self.pace.rate_per_agent
        due, seq = time.monotonic() + step * offset, 0
        while not self.stop.is_set():
            agent.write({"seq": seq, "text": self.pace.text, "score": seq % 97 / 97})
            self.counts[agent.agent_id] += 1
            seq += 1
            due += step
            delay = due - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                self.late += 1

    def _probe(self) -> None:
        """Write at the agents' pace (at most 10 a second) and time until the relay has it."""
        headers = {"X-Commander-Node": PROBE_NODE, "Authorization": f"Bearer {TOKENS[PROBE_NODE]}"}
        session = requests.Session()
        period = 1 / min(self.pace.rate_per_agent, MAX_PROBE_RATE)
        due, seq = time.monotonic(), 0
        while not self.stop.is_set():
            msg_id = self.probe.write({"seq": seq, "text": self.pace.text, "probe": True})
            written = time.perf_counter()
            self.counts["probe"] += 1
            url = f"{self.relay_url}/query/messages/{msg_id}"
            while True:
                self.probe_gets += 1
                if session.get(url, headers=headers, timeout=10).status_code == 200:
                    break
                if time.perf_counter() - written > 30:
                    raise RuntimeError(f"{msg_id} not visible after 30 s")
                time.sleep(0.0005)
            self.visible.append(time.perf_counter() - written)
            seq += 1
            due += period
            self.stop.wait(max(0.0, due - time.monotonic()))
        session.close()


def sync_requests(relay_url: str) -> float:
    """POSTs the relay has answered on its message routes (from its /metrics)."""
    text = requests.get(f"{relay_url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "commander_relay_requests_total"
        and sample.labels.get("route") in ("/sync/message", "/sync/messages")
        and sample.labels.get("method") == "POST"
    )


def stored(db: Path) -> int:
    """Rows in the relay's database, read from this process (costs the relay nothing)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


def run(
    tmp: Path, minutes: float, warmup_s: float, idle_s: float, pace: Pace | None = None
) -> dict[str, object]:
    """Idle floor, then the load; return the figures."""
    port = free_port()
    config = load_cluster(tmp / "relay", port)
    relay = start_relay(write_config_dir(tmp / "config", config), tmp / "relay", port, tmp / "log")
    relay_url, pid, db = relay.url, relay.proc.pid, tmp / "relay/messages/cluster_messages.db"
    pace = pace or Pace()
    sampler = RssSampler({"relay": lambda: pid}).start()
    nodes: list[Node] = []
    writers: Writers | None = None
    try:
        time.sleep(2)
        idle = CpuWindow(pid).start()
        time.sleep(idle_s)
        idle.stop()
        rss_idle = rss_mb(pid)
        for node_id in NODES:
            options = NodeOptions(
                data_dir=str(tmp / node_id),
                relay_url=relay_url,
                token=TOKENS[node_id],
                synchronous=pace.node_synchronous,
            )
            nodes.append(Node(config, node_id, options).start())
        handles = [n.agent(a.agent_id) for n in nodes for a in config.agents_on(n.node_id)]
        probe = next(h for h in handles if h.agent_id == PROBE_AGENT)
        others = [h for h in handles if h is not probe]
        writers = Writers(others, probe, relay_url, pace).start()
        time.sleep(warmup_s)
        written0, visible0, stored0 = writers.written, len(writers.visible), stored(db)
        gets0, posts0 = writers.probe_gets, sync_requests(relay_url)
        window = CpuWindow(pid).start()
        time.sleep(minutes * 60)
        window.stop()
        stored1, written1, gets1 = stored(db), writers.written, writers.probe_gets
        posts1 = sync_requests(relay_url)
        visible = writers.visible[visible0:]
        writers.finish()
        all_stored = _wait_stored(db, writers.written, 60)
        peak = peak_rss_mb(pid)
    finally:
        if writers is not None:
            writers.finish()
        for node in nodes:
            node.stop()
        sampler.stop()
        relay.terminate()
    rss = [mb for _, _, mb in sampler.series("relay")]
    msgs = stored1 - stored0
    return {
        "relay_cpu_pct": round(window.pct, 2),
        "relay_rss_mb": round(peak, 1),
        "cpu_us_per_msg": round(window.cpu_s * 1e6 / msgs, 1) if msgs else None,
        "requests_per_msg": round((posts1 - posts0) / msgs, 3) if msgs else None,
        "relay_sys_share": round(window.sys_s / window.cpu_s, 2) if window.cpu_s else None,
        "visible_p99_ms": round(percentile(visible, 99) * 1000, 2),
        "visible_p50_ms": round(percentile(visible, 50) * 1000, 2),
        "visible_samples": len(visible),
        "relay_idle_cpu_pct": round(idle.pct, 2),
        "relay_idle_rss_mb": round(rss_idle, 1),
        "relay_rss_median_mb": round(statistics.median(rss), 1) if rss else None,
        "msgs_per_s": round((written1 - written0) / window.wall_s, 1),
        "probe_gets_per_s": round((gets1 - gets0) / window.wall_s, 1),
        "stored_in_window": msgs,
        "written_total": writers.written if writers else 0,
        "stored_total": all_stored,
        "lost": (writers.written if writers else 0) - all_stored,
        "late_writes": writers.late if writers else 0,
        "window_s": round(window.wall_s, 1),
        "nodes": len(NODES),
        "agents": len(handles),
    }


def _wait_stored(db: Path, expected: int, timeout: float) -> int:
    """Wait (bounded) until the relay holds every written message; return what it holds."""
    deadline = time.monotonic() + timeout
    count = stored(db)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        count = stored(db)
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load; the last line is one JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench load")
    parser.add_argument("--quick", action="store_true", help="1 minute of load instead of 5")
    parser.add_argument("--minutes", type=float, help="minutes of load (overrides --quick)")
    args = parser.parse_args(argv)
    minutes = args.minutes or (1.0 if args.quick else 5.0)
    warmup_s, idle_s = (5.0, 5.0) if args.quick else (15.0, 15.0)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        result = run(Path(tmp), minutes, warmup_s, idle_s)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print("targets: relay_cpu_pct < 5, relay_rss_mb < 50, visible_p99_ms <= 10")
    print(json.dumps(result))
    return 0 if result["stored_total"] == result["written_total"] else 1
