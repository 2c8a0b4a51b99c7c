"""A relay and one node as real processes, and how to read the node's answers."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from runtime.node.client import NodeAdmin
from tests.support import (
    FAST_SYNC,
    Daemon,
    cluster,
    free_port,
    start_node,
    start_relay,
    write_config_dir,
)

# The production default: a frozen relay then holds each HTTP call this long.
SYNC = dataclasses.replace(FAST_SYNC, timeout_seconds=5.0)


@dataclasses.dataclass
class Procs:
    """Where the relay and node-a of one test live."""

    tmp: Path
    config_dir: Path
    relay_url: str
    port: int
    relay: Daemon | None = None
    node: Daemon | None = None

    def start_relay(self) -> Daemon:
        """Start (or restart) the relay on its port."""
        self.relay = start_relay(
            self.config_dir, self.tmp / "relay", self.port, self.tmp / "relay.log"
        )
        return self.relay

    def start_node(self) -> Daemon:
        """Start node-a, with its data under tmp/node-a."""
        self.node = start_node(
            self.config_dir, "node-a", self.node_data, self.relay_url, self.tmp / "node.log"
        )
        return self.node

    @property
    def node_data(self) -> Path:
        """node-a's data directory."""
        return self.tmp / "node-a"


@contextmanager
def relay_and_node_dirs(tmp_path: Path) -> Iterator[Procs]:
    """Config for a relay and node-a (agents a1, a2); whatever was started is stopped after."""
    port = free_port()
    config = cluster(tmp_path / "relay", relay_port=port, sync=SYNC)
    procs = Procs(tmp_path, write_config_dir(tmp_path / "config", config), "", port)
    procs.relay_url = f"http://127.0.0.1:{port}"
    try:
        yield procs
    finally:
        for daemon in (procs.node, procs.relay):
            if daemon is not None:
                daemon.kill()


def scrape(node_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The node's /metrics as {(sample name, sorted labels): value}."""
    text = requests.get(node_url + "/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(samples: dict[Any, float], name: str, **labels: str) -> float:
    """One sample's value; KeyError names what is missing."""
    return samples[(name, tuple(sorted(labels.items())))]


def agent_status(node: Daemon, agent_id: str) -> dict[str, Any]:
    """One agent's entry in the node's /status (through node.sock)."""
    body = NodeAdmin(node.sockets, timeout=5).status()
    return next(a for a in body["agents"] if a["agent_id"] == agent_id)


def timed_get(url: str, timeout: float = 10.0) -> tuple[float, requests.Response]:
    """GET and how long the answer took."""
    start = time.monotonic()
    response = requests.get(url, timeout=timeout)
    return time.monotonic() - start, response
