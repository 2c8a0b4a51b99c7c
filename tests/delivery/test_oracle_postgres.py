"""The delivery oracle on PostgreSQL: two relay processes on one database, both nodes
given both relays' URLs, agents writing while relays are SIGKILLed in turn and the
database server restarts once.

Every write an agent saw acknowledged must end up in the database exactly once with its
content intact, and nothing may be there that no agent wrote. The server restarts with
`fast` (every commit kept, as an operator's restart does): its test settings turn
synchronous_commit off, under which a crash may forget the last commits by design.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from runtime.node.client import NodeClient
from runtime.node.unix_http import BASE_URL, unix_session
from tests.delivery.harness import postgres_rows
from tests.support import Daemon, cluster, free_port, start_node, wait_for, write_config_dir
from tests.support.postgres import ThrowawayPostgres

CHAOS_SECONDS = 16.0
RELAY_FAULT_EVERY_S = (1.5, 2.5)
RELAY_DOWN_S = (0.3, 1.5)
POSTGRES_DOWN_S = 1.0
AGENTS = {"a1": "node-a", "a2": "node-a", "b1": "node-b", "b2": "node-b"}


@dataclass
class Ledger:
    """What the agents tried to write and what their nodes acknowledged."""

    attempted: dict[str, Any] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class TwoRelays:
    """Two relay processes on one database, each on a port of its own kept over restarts,
    and both nodes, each preferring another relay."""

    def __init__(self, tmp: Path, dsn: str) -> None:
        self.tmp, self.dsn = tmp, dsn
        self.ports = [free_port(), free_port()]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.config_dir = write_config_dir(tmp / "config", cluster(tmp / "relay-0", self.ports[0]))
        self.relays: list[Daemon | None] = [None, None]
        self.nodes: dict[str, Daemon] = {}
        self.kills = 0

    def start_relay(self, i: int) -> None:
        """`commander-relay serve --store <dsn>` on relay i's port."""
        args = ["-m", "relay_app.cli", "serve", "--config", str(self.config_dir / "relay.yaml"),
                "--host", "127.0.0.1", "--port", str(self.ports[i]),
                "--data-dir", str(self.tmp / f"relay-{i}"), "--store", self.dsn]  # fmt: skip
        self.relays[i] = Daemon(args, self.tmp / f"relay-{i}.log")

    def kill_relay(self, i: int) -> None:
        """SIGKILL relay i."""
        daemon, self.relays[i] = self.relays[i], None
        if daemon is not None:
            daemon.kill()
            self.kills += 1

    def start_nodes(self) -> None:
        """node-a prefers relay 0, node-b relay 1; each has the other as its fallback."""
        for node_id, urls in (("node-a", self.urls), ("node-b", self.urls[::-1])):
            self.nodes[node_id] = start_node(
                self.config_dir, node_id, self.tmp / node_id, ",".join(urls),
                self.tmp / f"{node_id}.log",
            )  # fmt: skip

    def stop_all(self) -> None:
        """Stop the nodes, then the relays."""
        for daemon in [*self.nodes.values(), *self.relays]:
            if daemon is not None:
                daemon.kill()


def writer(cl: TwoRelays, agent_id: str, ledger: Ledger, stop: threading.Event) -> None:
    """An agent writing known ids and contents; a write counts only when acknowledged."""
    path = cl.nodes[AGENTS[agent_id]].socket_path(agent_id)
    session = unix_session(path)
    seq = 0
    try:
        while not stop.is_set():
            msg_id = f"{agent_id}-{seq:06d}"
            content = {"agent": agent_id, "seq": seq, "check": f"{agent_id}:{seq * 7919 % 10007}"}
            with ledger.lock:
                ledger.attempted[msg_id] = content
            try:
                response = session.post(
                    f"{BASE_URL}/agents/{agent_id}/messages",
                    json={"msg_id": msg_id, "content": content},
                    timeout=3,
                )
            except requests.RequestException:
                time.sleep(0.05)
                continue  # the same msg_id again: a retry is idempotent
            if response.status_code == 201:
                with ledger.lock:
                    ledger.acked.add(msg_id)
            seq += 1
            time.sleep(0.01)
    finally:
        session.close()


def chaos(cl: TwoRelays, server: ThrowawayPostgres, rng: random.Random) -> dict[str, float]:
    """SIGKILL a relay (the two in turn) every few seconds and bring it back; restart
    PostgreSQL once half-way. Return when the restart happened (seconds into the chaos)."""
    started = time.monotonic()
    restarted_at = -1.0
    victim = 0
    while time.monotonic() - started < CHAOS_SECONDS:
        time.sleep(rng.uniform(*RELAY_FAULT_EVERY_S))
        if restarted_at < 0 and time.monotonic() - started > CHAOS_SECONDS / 2:
            server.restart(down_s=POSTGRES_DOWN_S)
            restarted_at = time.monotonic() - started
            continue
        cl.kill_relay(victim)
        time.sleep(rng.uniform(*RELAY_DOWN_S))
        cl.start_relay(victim)
        victim = 1 - victim
    return {"postgres_restarted_at_s": restarted_at}


def test_every_acknowledged_write_arrives_once_through_relay_kills_and_a_database_restart(
    tmp_path: Path, postgres_server: ThrowawayPostgres, postgres_dsn: str
) -> None:
    cl = TwoRelays(tmp_path, postgres_dsn)
    ledger, stop = Ledger(), threading.Event()
    threads = [threading.Thread(target=writer, args=(cl, a, ledger, stop)) for a in AGENTS]
    try:
        cl.start_relay(0)
        cl.start_relay(1)
        cl.start_nodes()
        for t in threads:
            t.start()
        timeline = chaos(cl, postgres_server, random.Random(15))
        stop.set()
        for t in threads:
            t.join()
        started = time.monotonic()
        wait_for(lambda: ledger.acked <= postgres_rows(cl.dsn).keys(), timeout=30, step=0.5)
        drained = time.monotonic() - started
        check_exactly_once(cl, ledger, {**timeline, "drain_s": round(drained, 1)})
        check_fresh_message_flows(cl)
    finally:
        stop.set()
        cl.stop_all()


def check_exactly_once(cl: TwoRelays, ledger: Ledger, notes: dict[str, float]) -> None:
    """Every acknowledged write in the database once, intact; nothing nobody wrote."""
    rows = postgres_rows(cl.dsn)
    missing = ledger.acked - rows.keys()
    duplicates = [m for m, contents in rows.items() if len(contents) != 1]
    # The same write under two msg_ids would be stored twice too.
    writes = Counter((c["agent"], c["seq"]) for contents in rows.values() for c in contents)
    twice = [w for w, n in writes.items() if n > 1]
    unknown = rows.keys() - ledger.attempted.keys()
    damaged = [m for m, c in rows.items() if m in ledger.attempted and c[0] != ledger.attempted[m]]
    print(
        f"\noracle on postgres: attempted={len(ledger.attempted)} acked={len(ledger.acked)}"
        f" stored={len(rows)} missing={len(missing)} duplicates={len(duplicates) + len(twice)}"
        f" unknown={len(unknown)} damaged={len(damaged)} relay_kills={cl.kills} {notes}"
    )
    assert not missing
    assert not duplicates
    assert not twice
    assert not unknown
    assert not damaged
    assert cl.kills >= 3
    assert notes["postgres_restarted_at_s"] > 0
    assert len(ledger.acked) > 300


def check_fresh_message_flows(cl: TwoRelays) -> None:
    """After the storm a new write reaches the database through each node."""
    for node_id, agent_id in (("node-a", "a1"), ("node-b", "b1")):
        msg_id = NodeClient(cl.nodes[node_id].sockets, agent_id, timeout=5).write("after it")
        wait_for(lambda: msg_id in postgres_rows(cl.dsn), timeout=10)  # noqa: B023
