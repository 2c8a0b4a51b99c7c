"""The restore drill with real processes: a relay restored from an older backup is whole
again within the refill window, exactly once, while agents keep writing; a node that
evicted part of what the relay lost sends what it holds and reports the rest."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime.core.config import CacheConfig, ClusterConfig
from runtime.node.client import NodeClient
from tests.delivery.harness import relay_rows
from tests.delivery.procs import SYNC, metric, scrape
from tests.support import (
    Daemon,
    cluster,
    free_port,
    start_node,
    start_relay,
    wait_for,
    write_config_dir,
)

REFILL_WINDOW = 60.0  # seconds: the drill's bound on "whole again"


@dataclasses.dataclass
class Site:
    """A relay and node-a as processes, their directories, and how to restart the relay."""

    tmp: Path
    config_dir: Path
    port: int
    relay: Daemon
    node: Daemon

    @property
    def relay_dir(self) -> Path:
        """The relay's data directory."""
        return self.tmp / "relay"

    def relay_cli(self, *args: str) -> str:
        """Run `commander-relay ARGS` on the relay's config; its output (it must succeed)."""
        config = str(self.config_dir / "relay.yaml")
        command = [sys.executable, "-m", "relay_app.cli", *args, "--config", config,
                   "--data-dir", str(self.relay_dir)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def restart_relay_from(self, backup: Path) -> None:
        """Stop the relay, restore `backup` into its data directory, start it again."""
        assert self.relay.terminate() == 0
        self.relay_cli("restore", str(backup))
        self.relay = start_relay(self.config_dir, self.relay_dir, self.port, self.tmp / "relay.log")


@contextmanager
def site(tmp_path: Path, config: ClusterConfig | None = None) -> Iterator[Site]:
    """Start a relay and node-a; kill both at the end."""
    port = free_port()
    config = config or cluster(tmp_path / "relay", relay_port=port, sync=SYNC)
    config_dir = write_config_dir(tmp_path / "config", config)
    relay = start_relay(config_dir, tmp_path / "relay", port, tmp_path / "relay.log")
    node = start_node(
        config_dir, "node-a", tmp_path / "node-a", f"http://127.0.0.1:{port}",
        tmp_path / "node.log", "--refill-check-interval", "0.3",
    )  # fmt: skip
    found = Site(tmp_path, config_dir, port, relay, node)
    try:
        yield found
    finally:
        for daemon in (found.node, found.relay):
            daemon.kill()


class Writer:
    """Keeps writing through an agent's socket until stopped; remembers what it wrote."""

    def __init__(self, node: Daemon, agent: str) -> None:
        self.client = NodeClient(node.sockets, agent)
        self.written: dict[str, dict[str, object]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i in range(100_000):
            if self._stop.is_set():
                return
            content = {"writer": i, "text": f"still writing {i}"}
            self.written[self.client.write(content)] = content
            time.sleep(0.01)

    def stop(self) -> dict[str, dict[str, object]]:
        """Stop; what was written."""
        self._stop.set()
        self._thread.join(10)
        self.client.close()
        return dict(self.written)


def write(node: Daemon, agent: str, count: int, tag: str) -> dict[str, dict[str, object]]:
    """Write `count` messages through the agent's socket; msg_id -> content."""
    client = NodeClient(node.sockets, agent)
    try:
        written = {}
        for i in range(count):
            content = {"tag": tag, "i": i, "text": f"message {tag} {i} " + "x" * 200}
            written[client.write(content)] = content
        return written
    finally:
        client.close()


def cached(node_dir: Path, agent: str) -> set[str]:
    """The msg_ids an agent's cache holds (read-only, beside the running node)."""
    path = node_dir / "cache" / agent / "messages.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute("SELECT msg_id FROM messages")}
    finally:
        conn.close()


def on_relay(relay_dir: Path, written: dict[str, dict[str, object]]) -> bool:
    """Whether every written message is on the relay."""
    rows = relay_rows(relay_dir)
    return all(m in rows for m in written)


def refill_figure(node: Daemon, name: str, agent: str) -> float:
    """One of the node's refill metrics for an agent."""
    return metric(scrape(node.url), name, node="node-a", agent=agent)


def test_the_drill_restores_an_older_backup_and_the_node_refills_the_rest(
    tmp_path: Path,
) -> None:
    """N, backup, M, restore: all N + M are back exactly once, intact, as writes go on."""
    with site(tmp_path) as s:
        first = write(s.node, "a1", 150, "N")
        wait_for(lambda: on_relay(s.relay_dir, first), timeout=30)
        s.relay_cli("backup", str(tmp_path / "backup"))
        later = write(s.node, "a1", 120, "M") | write(s.node, "a2", 60, "M")
        wait_for(lambda: on_relay(s.relay_dir, later), timeout=30)
        writer = Writer(s.node, "a2")
        time.sleep(0.3)
        s.restart_relay_from(tmp_path / "backup")
        took = wait_for(lambda: on_relay(s.relay_dir, first | later), timeout=REFILL_WINDOW)
        time.sleep(0.5)
        ongoing = writer.stop()
        wait_for(lambda: on_relay(s.relay_dir, ongoing), timeout=30)
        rows = relay_rows(s.relay_dir)
        for msg_id, content in (first | later | ongoing).items():
            assert rows[msg_id] == [content], msg_id
        assert len(rows) == len(first | later | ongoing)  # each once, nothing else
        assert refill_figure(s.node, "commander_refill_messages_total", "a1") == 120
        print(f"the relay was whole {took:.2f}s after it came back on the older backup")


def test_a_node_that_evicted_part_of_the_loss_sends_the_rest_and_reports_it(
    tmp_path: Path,
) -> None:
    """A small cache: what it still holds is sent again, what it evicted is counted."""
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port, sync=SYNC)
    small = CacheConfig(max_bytes=100_000)
    agents = tuple(
        dataclasses.replace(a, cache=small) if a.agent_id == "a1" else a for a in config.agents
    )
    with site(tmp_path, dataclasses.replace(config, agents=agents)) as s:
        first = write(s.node, "a1", 50, "N")
        wait_for(lambda: on_relay(s.relay_dir, first), timeout=30)
        s.relay_cli("backup", str(tmp_path / "backup"))
        later = write(s.node, "a1", 600, "M")  # about three times what the cache holds
        wait_for(lambda: on_relay(s.relay_dir, later), timeout=60)
        s.restart_relay_from(tmp_path / "backup")
        kept = cached(tmp_path / "node-a", "a1") & set(later)
        assert 0 < len(kept) < len(later)
        wait_for(lambda: on_relay(s.relay_dir, dict.fromkeys(kept)), timeout=REFILL_WINDOW)
        lost = len(later) - len(kept)
        wait_for(
            lambda: refill_figure(s.node, "commander_refill_unrefillable_messages", "a1") == lost,
            timeout=REFILL_WINDOW,
        )
        rows = relay_rows(s.relay_dir)
        assert all(len(rows[m]) == 1 for m in kept | set(first))
        assert not (set(later) - kept) & set(rows)
