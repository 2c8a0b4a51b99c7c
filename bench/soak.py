"""Soak: a long run of relay outages and node kills, then the delivery oracle and memory.

    python -m bench soak [--quick] [--minutes M]     (COMMANDER_SOAK_MINUTES, default 30)

The relay and two nodes run as real processes (`relay_app.cli serve`, `runtime.node.daemon`);
four agents (two per node) write known ids and contents through the nodes' loopback
endpoint at 20 messages a second each, and a write counts as acknowledged only when the
node answered 201 (the ideas of tests/delivery/test_oracle.py).
- Every minute the relay is taken away for 10 s and brought back, alternately by a
  network cut (a forwarder between nodes and relay resets every connection and refuses
  new ones) and by freezing its process (SIGSTOP ... SIGCONT: requests hang and time out).
  The relay process itself is never killed here, so its memory is followed over the whole
  run; relay SIGKILLs are what the oracle test in `make test` does.
- node-a is killed with SIGKILL every 3 minutes (every 50 s with --quick) and restarted;
  node-b lives through the run, so its memory too is followed from start to end.
- At the end: faults stop, writers stop, the backlog drains (bounded wait), and the
  oracle: every acknowledged message is in the relay once with its content intact, and
  nothing is there that no agent wrote.
- RSS of the relay and both nodes every 5 s; growth = median of the last fifth of the
  run minus the median of the first fifth after warm-up (the first third of the run).

Last line: {"acked", "stored_once", "lost", "duplicates", "rss_growth_mb", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from runtime.core.envelope import decode_content
from runtime.node.unix_http import BASE_URL, unix_session
from tests.support import (
    Daemon,
    Partition,
    RssSampler,
    cluster,
    free_port,
    start_node,
    start_relay,
    write_config_dir,
)

AGENTS = {"a1": "node-a", "a2": "node-a", "b1": "node-b", "b2": "node-b"}
RATE_PER_AGENT = 20.0
RELAY_EVERY_S, RELAY_AWAY_S = 60.0, 10.0
DRAIN_TIMEOUT_S = 180.0


@dataclass
class Ledger:
    """What the agents tried to write and what the nodes acknowledged."""

    attempted: dict[str, Any] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SoakCluster:
    """Relay behind a Partition, two node daemons; restartable pieces and fault counts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        relay_port, self.front_port = free_port(), free_port()
        self.relay_data = tmp / "relay"
        self.config_dir = write_config_dir(tmp / "config", cluster(self.relay_data, relay_port))
        self.relay = start_relay(self.config_dir, self.relay_data, relay_port, tmp / "relay.log")
        self.partition = Partition(self.front_port, relay_port)
        self.partition.heal()
        self.nodes: dict[str, Daemon | None] = dict.fromkeys(("node-a", "node-b"))
        self.faults = {"relay_cuts": 0, "relay_freezes": 0, "node_kills": 0}
        for node_id in self.nodes:
            self.start_node(node_id)

    def start_node(self, node_id: str) -> None:
        """Start a node daemon pushing to the relay through the partition."""
        self.nodes[node_id] = start_node(
            self.config_dir,
            node_id,
            self.tmp / node_id,
            f"http://127.0.0.1:{self.front_port}",
            self.tmp / f"{node_id}.log",
            "--log-level",
            "WARNING",
        )

    def agent_socket(self, node_id: str, agent_id: str) -> str | None:
        """The agent's socket on its node, or None while the node is down."""
        daemon = self.nodes[node_id]
        return daemon.socket_path(agent_id) if daemon is not None else None

    def pid(self, node_id: str) -> int | None:
        """The node's pid, or None while it is down."""
        daemon = self.nodes[node_id]
        return daemon.proc.pid if daemon is not None else None

    def kill_node(self, node_id: str) -> None:
        """SIGKILL a node and start it again."""
        daemon, self.nodes[node_id] = self.nodes[node_id], None
        if daemon is not None:
            daemon.kill()
            self.faults["node_kills"] += 1
        self.start_node(node_id)

    def relay_away(self, how: str, seconds: float, stop: threading.Event) -> None:
        """Take the relay away for `seconds` by a network cut or a freeze, then bring it back."""
        if how == "cut":
            self.partition.cut()
            self.faults["relay_cuts"] += 1
            stop.wait(seconds)
            self.partition.heal()
            return
        self.relay.proc.send_signal(signal.SIGSTOP)
        self.faults["relay_freezes"] += 1
        try:
            stop.wait(seconds)
        finally:
            self.relay.proc.send_signal(signal.SIGCONT)

    def stop_all(self) -> None:
        """Stop nodes, then the partition and the relay."""
        for daemon in self.nodes.values():
            if daemon is not None:
                daemon.terminate()
        self.relay.proc.send_signal(signal.SIGCONT)
        self.partition.cut()
        self.relay.terminate()


def writer(cl: SoakCluster, agent_id: str, ledger: Ledger, stop: threading.Event) -> None:
    """One agent writing known ids and contents at RATE_PER_AGENT; acked only on a 201."""
    sessions: dict[str, requests.Session] = {}
    seq, due = 0, time.monotonic()
    while not stop.is_set():
        msg_id = f"soak-{agent_id}-{seq:07d}"
        content = {"agent": agent_id, "seq": seq, "check": f"{agent_id}:{seq * 7919 % 10007}"}
        with ledger.lock:
            ledger.attempted[msg_id] = content
        path = cl.agent_socket(AGENTS[agent_id], agent_id)
        if path is not None:
            session = sessions.setdefault(path, unix_session(path))
            try:
                response = session.post(
                    f"{BASE_URL}/agents/{agent_id}/messages",
                    json={"msg_id": msg_id, "content": content},
                    timeout=3,
                )
                if response.status_code == 201:
                    with ledger.lock:
                        ledger.acked.add(msg_id)
            except requests.RequestException:
                pass  # the node is down or restarting: not acknowledged
        seq += 1
        due += 1 / RATE_PER_AGENT
        stop.wait(max(0.0, due - time.monotonic()))
    for session in sessions.values():
        session.close()


def chaos(cl: SoakCluster, seconds: float, node_every: float, stop: threading.Event) -> None:
    """Relay away every minute (cut and freeze in turn); node-a killed every `node_every`."""
    start = time.monotonic()
    next_relay, next_node, turn = start + RELAY_EVERY_S / 2, start + node_every / 2, 0
    while not stop.is_set() and time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_relay:
            cl.relay_away("cut" if turn % 2 == 0 else "freeze", RELAY_AWAY_S, stop)
            turn += 1
            next_relay += RELAY_EVERY_S
        elif now >= next_node:
            cl.kill_node("node-a")
            next_node += node_every
        else:
            stop.wait(min(next_relay, next_node) - now)


def relay_rows(data_dir: Path) -> dict[str, list[Any]]:
    """Read the cluster database directly: msg_id -> every row's decoded content."""
    path = data_dir / "messages" / "cluster_messages.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows: dict[str, list[Any]] = {}
        for msg_id, blob in conn.execute("SELECT msg_id, content FROM messages"):
            rows.setdefault(msg_id, []).append(decode_content(blob))
        return rows
    finally:
        conn.close()


def wait_drained(cl: SoakCluster, ledger: Ledger) -> float:
    """Wait (bounded) until every acked message is in the relay; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < DRAIN_TIMEOUT_S:
        if ledger.acked <= relay_rows(cl.relay_data).keys():
            break
        time.sleep(2)
    return time.monotonic() - start


def oracle(cl: SoakCluster, ledger: Ledger) -> dict[str, int]:
    """Every acked message stored once, intact; nothing stored that no agent wrote."""
    rows = relay_rows(cl.relay_data)
    once = [m for m in ledger.acked if len(rows.get(m, ())) == 1]
    intact = [m for m in once if rows[m][0] == ledger.attempted[m]]
    return {
        "attempted": len(ledger.attempted),
        "acked": len(ledger.acked),
        "stored": len(rows),
        "stored_once": len(intact),
        "lost": len(ledger.acked - rows.keys()),
        "duplicates": sum(1 for contents in rows.values() if len(contents) > 1),
        "damaged": len(once) - len(intact),
        "unknown": len(rows.keys() - ledger.attempted.keys()),
    }


def rss_growth(sampler: RssSampler, name: str, warmup_s: float) -> dict[str, float] | None:
    """Median RSS of the last fifth minus that of the first fifth after warm-up, and peak."""
    series = [(t, mb) for t, _, mb in sampler.series(name) if t >= warmup_s]
    if len(series) < 10:
        return None
    fifth = max(1, len(series) // 5)
    early = statistics.median(mb for _, mb in series[:fifth])
    late = statistics.median(mb for _, mb in series[-fifth:])
    return {
        "after_warmup_mb": round(early, 1),
        "end_mb": round(late, 1),
        "growth_mb": round(late - early, 1),
        "peak_mb": round(max(mb for _, _, mb in sampler.series(name)), 1),
    }


def per_minute(sampler: RssSampler, name: str) -> list[float]:
    """Median RSS of one process in each minute of the run, MB (the memory over time)."""
    minutes: dict[int, list[float]] = {}
    for t, _, mb in sampler.series(name):
        minutes.setdefault(int(t // 60), []).append(mb)
    return [round(statistics.median(minutes[m]), 1) for m in sorted(minutes)]


def run(tmp: Path, minutes: float, node_every: float) -> dict[str, Any]:
    """The whole soak; returns the figures."""
    cl = SoakCluster(tmp)
    ledger, stop_writes, stop_chaos = Ledger(), threading.Event(), threading.Event()
    relay_pid = cl.relay.proc.pid
    sampler = RssSampler(
        {
            "relay": lambda: relay_pid,
            "node-a": lambda: cl.pid("node-a"),
            "node-b": lambda: cl.pid("node-b"),
        },
        every=5.0,
    ).start()
    threads = [threading.Thread(target=writer, args=(cl, a, ledger, stop_writes)) for a in AGENTS]
    try:
        for t in threads:
            t.start()
        chaos(cl, minutes * 60, node_every, stop_chaos)
        stop_writes.set()
        for t in threads:
            t.join(30)
        drain_s = wait_drained(cl, ledger)
        sampler.stop()
        figures: dict[str, Any] = oracle(cl, ledger)
    finally:
        stop_chaos.set()
        stop_writes.set()
        sampler.stop()
        cl.stop_all()
    memory = {n: rss_growth(sampler, n, minutes * 60 / 3) for n in ("relay", "node-a", "node-b")}
    long_lived = [m["growth_mb"] for n, m in memory.items() if m is not None and n != "node-a"]
    figures.update(
        rss_growth_mb=max(long_lived) if long_lived else None,
        memory=memory,
        rss_by_minute_mb={n: per_minute(sampler, n) for n in ("relay", "node-b")},
        drain_after_faults_s=round(drain_s, 1),
        minutes=minutes,
        **cl.faults,
    )
    return figures


def minutes_from(args: argparse.Namespace) -> float:
    """--minutes, else 3 with --quick, else COMMANDER_SOAK_MINUTES, else 30."""
    if args.minutes:
        return float(args.minutes)
    if args.quick:
        return 3.0
    return float(os.environ.get("COMMANDER_SOAK_MINUTES", "30"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; the last line is one JSON object; exit 1 if the oracle fails."""
    parser = argparse.ArgumentParser(prog="python -m bench soak")
    parser.add_argument("--quick", action="store_true", help="3 minutes instead of 30")
    parser.add_argument("--minutes", type=float, help="length of the fault phase")
    args = parser.parse_args(argv)
    minutes = minutes_from(args)
    node_every = 50.0 if minutes < 10 else 180.0
    print(
        f"soak: {minutes:g} min; relay away {RELAY_AWAY_S:g}s every {RELAY_EVERY_S:g}s,"
        f" node-a killed every {node_every:g}s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        result = run(Path(tmp), minutes, node_every)
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print("targets: lost == 0, duplicates == 0, damaged == 0, unknown == 0, rss_growth_mb < 5")
    print(json.dumps(result))
    failed = result["lost"] or result["duplicates"] or result["damaged"] or result["unknown"]
    return 1 if failed else 0
