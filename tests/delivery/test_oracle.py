"""The oracle test: relay and nodes as real processes, killed and stopped at random moments.

Every write an agent saw acknowledged must end up in the relay exactly once with
its content intact, and nothing may be there that no agent wrote.
COMMANDER_CHAOS_SECONDS makes the chaos phase longer (the soak runs it for minutes).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from runtime.node.client import NodeClient
from runtime.node.unix_http import BASE_URL, unix_session
from tests.delivery.harness import relay_rows
from tests.support import (
    Daemon,
    cluster,
    free_port,
    start_node,
    start_relay,
    wait_for,
    write_config_dir,
)

CHAOS_SECONDS = float(os.environ.get("COMMANDER_CHAOS_SECONDS", "18"))
AGENTS = {"a1": "node-a", "a2": "node-a", "b1": "node-b", "b2": "node-b"}


@dataclass
class Ledger:
    """What the agents tried to write and what the nodes acknowledged."""

    attempted: dict[str, Any] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Cluster:
    """The relay and both nodes as processes, restartable by the chaos loop."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.port = free_port()
        self.relay_data = tmp_path / "relay"
        self.config_dir = write_config_dir(tmp_path / "config", cluster(self.relay_data, self.port))
        self.relay_url = f"http://127.0.0.1:{self.port}"
        self.relay: Daemon | None = None
        self.nodes: dict[str, Daemon | None] = {"node-a": None, "node-b": None}
        self.kills = {"node": 0, "relay": 0, "relay_stops": 0}

    def start_relay(self) -> None:
        self.relay = start_relay(
            self.config_dir, self.relay_data, self.port, self.tmp / "relay.log"
        )

    def start_node(self, node_id: str) -> None:
        self.nodes[node_id] = start_node(
            self.config_dir,
            node_id,
            self.tmp / node_id,
            self.relay_url,
            self.tmp / f"{node_id}.log",
        )

    def node_sockets(self, node_id: str) -> str | None:
        """The node's socket directory while it runs (`unix:DIR`), else None."""
        daemon = self.nodes[node_id]
        return daemon.sockets if daemon is not None else None

    def kill_node(self, node_id: str) -> None:
        daemon, self.nodes[node_id] = self.nodes[node_id], None
        if daemon is not None:
            daemon.kill()
            self.kills["node"] += 1

    def kill_relay(self) -> None:
        if self.relay is not None:
            self.relay.kill()
            self.relay = None
            self.kills["relay"] += 1

    def stop_all(self) -> None:
        for node_id in self.nodes:
            daemon = self.nodes[node_id]
            if daemon is not None:
                daemon.terminate()
        if self.relay is not None:
            self.relay.terminate()


def writer(cl: Cluster, agent_id: str, ledger: Ledger, stop: threading.Event) -> None:
    """An agent writing known ids and contents; a write counts only when acknowledged."""
    sessions: dict[str, requests.Session] = {}
    seq = 0
    while not stop.is_set():
        msg_id = f"{agent_id}-{seq:06d}"
        content = {"agent": agent_id, "seq": seq, "check": f"{agent_id}:{seq * 7919 % 10007}"}
        with ledger.lock:
            ledger.attempted[msg_id] = content
        for _ in range(3):  # a retry with the same msg_id is idempotent
            sockets = cl.node_sockets(AGENTS[agent_id])
            if sockets is None:
                time.sleep(0.05)
                continue
            path = f"{sockets.removeprefix('unix:')}/{agent_id}.sock"
            session = sessions.setdefault(path, unix_session(path))
            try:
                response = session.post(
                    f"{BASE_URL}/agents/{agent_id}/messages",
                    json={"msg_id": msg_id, "content": content},
                    timeout=3,
                )
            except requests.RequestException:
                time.sleep(0.05)
                continue
            if response.status_code == 201:
                with ledger.lock:
                    ledger.acked.add(msg_id)
                break
        seq += 1
        time.sleep(0.01)
    for session in sessions.values():
        session.close()


def chaos(cl: Cluster, seconds: float, rng: random.Random) -> None:
    """Kill nodes often, kill the relay now and then, and stop it for stretches."""
    deadline = time.monotonic() + seconds
    next_relay_event = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(1.0, 2.5))
        node_id = rng.choice(["node-a", "node-b"])
        cl.kill_node(node_id)
        cl.start_node(node_id)
        if time.monotonic() >= next_relay_event:
            next_relay_event = time.monotonic() + rng.uniform(2.5, 4.5)
            relay_fault(cl, rng)


def relay_fault(cl: Cluster, rng: random.Random) -> None:
    """Either SIGKILL the relay, or freeze it (SIGSTOP) for a stretch, then bring it back."""
    if cl.relay is not None and cl.kills["relay_stops"] < cl.kills["relay"] // 2:
        cl.relay.proc.send_signal(signal.SIGSTOP)
        time.sleep(rng.uniform(1.0, 3.0))
        cl.relay.proc.send_signal(signal.SIGCONT)
        cl.kills["relay_stops"] += 1
        return
    cl.kill_relay()
    time.sleep(rng.uniform(0.2, 2.0))
    cl.start_relay()


def start_writing(
    tmp_path: Path,
) -> tuple[Cluster, Ledger, threading.Event, list[threading.Thread]]:
    """A relay and every node running, and one writer thread per agent started."""
    cl = Cluster(tmp_path)
    cl.start_relay()
    for node_id in cl.nodes:
        cl.start_node(node_id)
    ledger, stop = Ledger(), threading.Event()
    threads = [threading.Thread(target=writer, args=(cl, a, ledger, stop)) for a in AGENTS]
    for t in threads:
        t.start()
    return cl, ledger, stop, threads


@pytest.mark.slow
def test_every_acknowledged_write_arrives_exactly_once_through_kills_and_stops(
    tmp_path: Path,
) -> None:
    cl, ledger, stop, threads = start_writing(tmp_path)
    try:
        chaos(cl, CHAOS_SECONDS, random.Random(int(os.environ.get("COMMANDER_CHAOS_SEED", "7"))))
        stop.set()
        for t in threads:
            t.join()
        if cl.relay is None:
            cl.start_relay()
        started = time.monotonic()
        wait_for(lambda: ledger.acked <= relay_rows(cl.relay_data).keys(), timeout=90, step=0.5)
        drained = time.monotonic() - started
        check_oracle(cl, ledger, drained)
        check_fresh_message_flows(cl)
    finally:
        stop.set()
        cl.stop_all()


def check_oracle(cl: Cluster, ledger: Ledger, drained: float) -> None:
    check_exactly_once(cl, ledger, f"drain_after_faults_s={drained:.1f}")
    assert cl.kills["node"] >= CHAOS_SECONDS // 4  # one every 2-3 s, on a loaded machine too
    assert cl.kills["relay"] >= 5 or CHAOS_SECONDS < 40
    assert len(ledger.acked) > 500


def check_exactly_once(cl: Cluster, ledger: Ledger, note: str = "") -> None:
    """Every acknowledged write on the relay once, intact; nothing there nobody wrote."""
    rows = relay_rows(cl.relay_data)
    missing = ledger.acked - rows.keys()
    duplicates = [m for m, contents in rows.items() if len(contents) != 1]
    unknown = rows.keys() - ledger.attempted.keys()
    damaged = [
        m
        for m, contents in rows.items()
        if m in ledger.attempted and contents[0] != ledger.attempted[m]
    ]
    print(
        f"\noracle: attempted={len(ledger.attempted)} acked={len(ledger.acked)} stored={len(rows)}"
        f" missing={len(missing)} duplicates={len(duplicates)} unknown={len(unknown)}"
        f" damaged={len(damaged)} node_kills={cl.kills['node']} relay_kills={cl.kills['relay']}"
        f" relay_stops={cl.kills['relay_stops']} {note}"
    )
    assert not missing
    assert not duplicates
    assert not unknown
    assert not damaged


def check_fresh_message_flows(cl: Cluster) -> None:
    sockets = cl.node_sockets("node-b")
    assert sockets is not None
    msg_id = NodeClient(sockets, "b1", timeout=5).write("after the storm")
    wait_for(lambda: msg_id in relay_rows(cl.relay_data), timeout=10)


def acked_of(ledger: Ledger, node_id: str) -> set[str]:
    """The acknowledged writes of the agents of one node."""
    with ledger.lock:
        return {m for m in ledger.acked if AGENTS[m.split("-", 1)[0]] == node_id}


def test_a_node_killed_while_the_relay_is_down_delivers_its_local_commits_once_both_return(
    tmp_path: Path,
) -> None:
    cl, ledger, stop, threads = start_writing(tmp_path)
    try:
        wait_for(
            lambda: len(acked_of(ledger, "node-a") & relay_rows(cl.relay_data).keys()) >= 20, 30
        )
        cl.kill_relay()
        before = acked_of(ledger, "node-a")
        wait_for(lambda: len(acked_of(ledger, "node-a") - before) >= 40, timeout=30)
        cl.kill_node("node-a")  # SIGKILL, relay down: its local commits are the only copies
        only_local = acked_of(ledger, "node-a") - relay_rows(cl.relay_data).keys()
        assert len(only_local) >= 40
        cl.start_node("node-a")  # back while the relay is still down
        restarted = acked_of(ledger, "node-a")
        wait_for(lambda: len(acked_of(ledger, "node-a") - restarted) >= 20, timeout=30)
        cl.start_relay()
        wait_for(lambda: len(acked_of(ledger, "node-a") - restarted) >= 40, timeout=30)
        stop.set()
        for t in threads:
            t.join()
        wait_for(lambda: ledger.acked <= relay_rows(cl.relay_data).keys(), timeout=60, step=0.5)
        check_exactly_once(cl, ledger, f"only_local_at_kill={len(only_local)}")
    finally:
        stop.set()
        cl.stop_all()
