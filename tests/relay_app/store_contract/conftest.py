"""The contract's fixtures: one `engine` per store implementation, its store and writer.

An engine is a fresh database and a way to open stores on it: `engine.open()` again is a
restart (or a second relay on the same database). A new implementation joins the
contract as one more entry of ENGINES; every test of this package then runs on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay_app.store import MessageStore, StoreWriter
from relay_app.stores.postgres import PostgresStore
from relay_app.stores.sqlite import SqliteStore

StoreFactory = Callable[[], MessageStore]


def sqlite_engine(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Stores on one SQLite file in tmp_path."""
    return lambda: SqliteStore(tmp_path / "relay")


def postgres_engine(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Stores on the tests' shared PostgreSQL database, emptied back to just migrated
    (tests/relay_app/conftest.py; migrating a new database is test_postgres_writer's)."""
    dsn: str = request.getfixturevalue("relay_database").reset()
    return lambda: PostgresStore(dsn)


# Engine name -> stores on one fresh database of that engine.
ENGINES: dict[str, Callable[[pytest.FixtureRequest, Path], StoreFactory]] = {
    "sqlite": sqlite_engine,
    "postgres": postgres_engine,
}


@dataclass
class Engine:
    """One implementation over one fresh database; every store it opened is closed after."""

    name: str
    make: StoreFactory
    opened: list[MessageStore] = field(default_factory=list)

    def open(self) -> MessageStore:
        """Another store on the same database."""
        store = self.make()
        self.opened.append(store)
        return store

    def close(self) -> None:
        """Close every store opened."""
        for store in reversed(self.opened):
            store.close()


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each engine in turn, on a fresh database."""
    engine = Engine(request.param, ENGINES[request.param](request, tmp_path))
    yield engine
    engine.close()


@pytest.fixture
def store(engine: Engine) -> MessageStore:
    """The engine's store."""
    return engine.open()


@pytest.fixture
def writer(store: MessageStore) -> Iterator[StoreWriter]:
    """The store's writer (in the test's thread, as the IngestActor holds it in its own)."""
    writer = store.open_writer()
    yield writer
    writer.close()
