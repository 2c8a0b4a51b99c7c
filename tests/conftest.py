"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from tests.relay_app.helpers import relay_daemon, write_config
from tests.support import Daemon
from tests.support.postgres import ThrowawayPostgres, require_postgres


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """Leave no actor thread running between tests."""
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[Daemon]:
    """`commander-relay serve` as its own process on 127.0.0.1, stopped after the test."""
    with relay_daemon(write_config(tmp_path / "config"), tmp_path) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres]:
    """One throwaway PostgreSQL for the whole run; its tests fail under CI without it."""
    require_postgres()
    server = ThrowawayPostgres()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: ThrowawayPostgres) -> str:
    """A new empty database on the throwaway server, for one test."""
    return postgres_server.create_database()
