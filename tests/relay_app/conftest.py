"""Fixtures of the relay tests: a real relay on 127.0.0.1 over real SQLite in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relay_app.server import RelayServer
from tests.relay_app.helpers import NODE_A, NODE_B, NodeClient, make_config

RelayFactory = Callable[..., RelayServer]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The relay's data directory."""
    return tmp_path / "relay"


@pytest.fixture
def relay_factory(data_dir: Path) -> Iterator[RelayFactory]:
    """Start relays (config overrides as keywords); every one is stopped at the end."""
    started: list[RelayServer] = []

    def start(config: Any = None, **kwargs: Any) -> RelayServer:
        server = RelayServer(
            config or make_config(data_dir), host="127.0.0.1", port=0, **kwargs
        ).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def relay(relay_factory: RelayFactory) -> RelayServer:
    """A relay with default limits and two known nodes."""
    return relay_factory()


@pytest.fixture
def node_a(relay: RelayServer) -> Iterator[NodeClient]:
    """node-a, authenticated."""
    client = NodeClient(relay.url, NODE_A)
    yield client
    client.close()


@pytest.fixture
def node_b(relay: RelayServer) -> Iterator[NodeClient]:
    """node-b, authenticated."""
    client = NodeClient(relay.url, NODE_B)
    yield client
    client.close()
