"""Fixtures of the relay tests: a real relay on 127.0.0.1 over real SQLite in tmp_path.

A test module that sets `STORE_ENGINES = ("sqlite", "postgres")` runs each of its tests
that starts a relay (through `data_dir`) once per engine: on "postgres" the relay stores
in a fresh database of the tests' PostgreSQL server, and make_config, row_counts and
stored_msg_ids of helpers.py follow it. Other modules stay on SQLite (CI time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relay_app.server import RelayServer
from tests.relay_app.helpers import NODE_A, NODE_B, PG_STORES, NodeClient, make_config

RelayFactory = Callable[..., RelayServer]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests of a module that names `STORE_ENGINES` on each of them."""
    engines = getattr(metafunc.module, "STORE_ENGINES", None)
    if engines and "store_engine" in metafunc.fixturenames:
        metafunc.parametrize("store_engine", engines, indirect=True)


@pytest.fixture
def store_engine(request: pytest.FixtureRequest) -> str:
    """Where the relay stores: "sqlite" unless the module asks for more engines."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def data_dir(tmp_path: Path, store_engine: str, request: pytest.FixtureRequest) -> Iterator[Path]:
    """The relay's data directory; on "postgres" its corpus is in a fresh database."""
    path = tmp_path / "relay"
    if store_engine == "postgres":
        PG_STORES[path] = request.getfixturevalue("postgres_dsn")
    yield path
    PG_STORES.pop(path, None)


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
