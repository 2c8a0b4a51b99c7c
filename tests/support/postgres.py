"""A throwaway PostgreSQL server for the tests, in a temporary directory of its own.

The server itself is runtime/quickstart/postgres.py's `LocalPostgres` (initdb and pg_ctl
from Debian's packages, as the `postgres` user when root), here with non-durable
settings (fsync off): a test's data is worth nothing after the test; a benchmark asks
for `durable=True`. Its directory is outside pytest's private temporary tree, which the
`postgres` user could not enter.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from runtime.quickstart.postgres import SUPERUSER, LocalPostgres, PostgresMissing, pg_bin
from tests.support.ports import free_port

__all__ = ["SUPERUSER", "PostgresMissing", "ThrowawayPostgres", "pg_bin", "require_postgres"]

# Durability off: these servers hold test data only.
TEST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")
# Durability on, as a production server runs (a benchmark comparing engines wants these).
DURABLE_SETTINGS = ("fsync=on", "full_page_writes=on", "synchronous_commit=on")


def require_postgres() -> None:
    """Skip the calling test where PostgreSQL's programs are missing, except under CI,
    where `make test` has installed them and their absence is a failure."""
    try:
        pg_bin()
    except PostgresMissing as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{exc} (`make test` installs it when run as root)")


class ThrowawayPostgres(LocalPostgres):
    """One PostgreSQL server in a temporary directory, stopped and removed by `stop()`."""

    def __init__(self, *, durable: bool = False) -> None:
        """A server with TEST_SETTINGS, or DURABLE_SETTINGS when `durable`."""
        pg_bin()  # PostgresMissing before any directory is made
        root = Path(tempfile.mkdtemp(prefix="commander-pg-"))
        super().__init__(root, root / "sockets")
        self.settings = DURABLE_SETTINGS if durable else TEST_SETTINGS

    @property
    def dsn(self) -> str:
        """The server's maintenance database, as its superuser, over TCP on 127.0.0.1."""
        return self.database_dsn("postgres")

    def start(self) -> ThrowawayPostgres:
        """initdb, then start and wait until it accepts connections."""
        self.initdb("-A", "trust", "--no-sync")
        self.launch(free_port(), self.settings)
        return self

    def create_database(self) -> str:
        """A new empty database; return its DSN."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.run("createdb", "-h", str(self.sockets), "-p", str(self.port), "-U", SUPERUSER, name)
        return self.database_dsn(name)

    def restart(self, down_s: float = 0.0) -> None:
        """Stop (`fast`: sessions rolled back, every commit kept), stay down `down_s`, then
        start again on the same port with the same settings and data."""
        self.shutdown("fast")
        time.sleep(down_s)
        self.launch(self.port, self.settings)

    def stop(self) -> None:
        """Stop at once (the data is thrown away) and remove the directory."""
        self.shutdown("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
