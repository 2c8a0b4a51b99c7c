"""Fixtures of the relay tests: a real relay on 127.0.0.1 over real SQLite in tmp_path.

A test module that sets `STORE_ENGINES = ("sqlite", "postgres")` runs each of its tests
that starts a relay (through `data_dir`) once per engine: on "postgres" the relay stores
in a fresh database of the tests' PostgreSQL server, and make_config, row_counts and
stored_msg_ids of helpers.py follow it. Other modules stay on SQLite (CI time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from relay_app.server import RelayServer
from relay_app.stores.postgres_schema import migrate
from tests.relay_app.helpers import NODE_A, NODE_B, PG_STORES, NodeClient, make_config
from tests.support.postgres import ThrowawayPostgres

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
    """The relay's data directory; on "postgres" its corpus is in an emptied database."""
    path = tmp_path / "relay"
    if store_engine != "postgres":
        yield path
        return
    database: FreshDatabase = request.getfixturevalue("relay_database")
    PG_STORES[path] = database.reset()
    yield path
    del PG_STORES[path]


@pytest.fixture(scope="session")
def relay_database(postgres_server: ThrowawayPostgres) -> FreshDatabase:
    """One database that the relay tests on PostgreSQL share, as new before each test."""
    return FreshDatabase.migrated(postgres_server.create_database())


@dataclass(frozen=True)
class FreshDatabase:
    """A database with the relay's schema and a way back to just that, for the next test.

    Emptying it costs a fifth of CREATE DATABASE (a checkpoint) and a migration, and the
    HTTP tests on PostgreSQL start about 160 relays. Nothing here names a table: what the
    migrations left (rows, sequence values) is saved once and put back.
    """

    dsn: str
    tables: tuple[str, ...]
    rows: dict[str, bytes]
    sequences: dict[str, tuple[int, bool]]

    @classmethod
    def migrated(cls, dsn: str) -> FreshDatabase:
        """Migrate the database at dsn and save what the migrations left in it."""
        with psycopg.connect(dsn, autocommit=True) as conn:
            migrate(conn)
            tables = [r[0] for r in conn.execute(TABLES)]
            rows = {}
            for table in tables:
                with conn.cursor().copy(sql.SQL(COPY_OUT).format(sql.Identifier(table))) as copy:
                    rows[table] = b"".join(bytes(chunk) for chunk in copy)
            sequences = {r[0]: (int(r[1]), bool(r[2])) for r in conn.execute(SEQUENCES)}
        return cls(dsn, tuple(tables), {t: b for t, b in rows.items() if b}, sequences)

    def reset(self) -> str:
        """Back to just migrated (a killed session of the last test ends first); the DSN."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(END_OTHER_SESSIONS)
            with conn.transaction():
                names = sql.SQL(", ").join(map(sql.Identifier, self.tables))
                conn.execute(sql.SQL("TRUNCATE {}").format(names))
                for table, data in self.rows.items():
                    copy_in = sql.SQL(COPY_IN).format(sql.Identifier(table))
                    with conn.cursor().copy(copy_in) as copy:
                        copy.write(data)
                for sequence, (value, called) in self.sequences.items():
                    conn.execute("SELECT setval(%s::regclass, %s, %s)", (sequence, value, called))
        return self.dsn


TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename), COALESCE(last_value, start_value),
    last_value IS NOT NULL
FROM pg_sequences WHERE schemaname = 'public'
"""
COPY_OUT = "COPY {} TO STDOUT"
COPY_IN = "COPY {} FROM STDIN"
END_OTHER_SESSIONS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


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
