"""A throwaway PostgreSQL server for the tests: initdb and pg_ctl from Debian's packages.

It listens on 127.0.0.1 at a free port and on a private socket directory, with
non-durable settings (fsync off): a test's data is worth nothing after the test.
initdb refuses to run as root, so as root every server command runs as the `postgres`
system user (`runuser -u postgres`), in a directory of its own outside pytest's
private temporary tree.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.support.ports import free_port

SUPERUSER = "commander"
START_TIMEOUT_S = 60
# Durability off: these servers hold test data only.
TEST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")


class PostgresMissing(RuntimeError):
    """No initdb/pg_ctl on this machine (`make test` installs Debian's postgresql)."""


def pg_bin() -> Path:
    """The directory holding initdb and pg_ctl: $COMMANDER_PG_BIN, Debian's newest, or PATH."""
    if configured := os.environ.get("COMMANDER_PG_BIN"):
        return Path(configured)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    if found is None:
        raise PostgresMissing("initdb not found: install Debian's postgresql package")
    return Path(found).parent


def _version(initdb: str) -> int:
    try:
        return int(Path(initdb).parents[1].name)
    except ValueError:
        return 0


class ThrowawayPostgres:
    """One PostgreSQL server in a temporary directory, stopped and removed by `stop()`."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="commander-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = 0
        self._as_postgres = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        """The server's maintenance database, as its superuser, over TCP on 127.0.0.1."""
        return self.database_dsn("postgres")

    def database_dsn(self, name: str) -> str:
        """A database of this server, as its superuser."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    def start(self) -> ThrowawayPostgres:
        """initdb, then start and wait until it accepts connections."""
        self.sockets.mkdir()
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        self.port = free_port()
        options = " ".join(
            [f"-p {self.port}", f"-k {self.sockets}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {setting}" for setting in TEST_SETTINGS]
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start")  # fmt: skip
        return self

    def create_database(self) -> str:
        """A new empty database; return its DSN."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._run("createdb", "-h", str(self.sockets), "-p", str(self.port), "-U", SUPERUSER, name)
        return self.database_dsn(name)

    def log(self) -> str:
        """What the server wrote to its log so far."""
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop at once (the data is thrown away) and remove the directory."""
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{self.log()}"
            )
