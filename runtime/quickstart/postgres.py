"""A local PostgreSQL server from Debian's packages: initdb, pg_ctl start, pg_ctl stop.

It listens on 127.0.0.1 only and on a private socket directory. initdb refuses to run as
root, so as root every server command runs as the `postgres` system user (`runuser -u
postgres --`) and the directories the server writes are handed to that user. Shared by
`make run-cluster` (a cluster kept under ./data/cluster/pg) and the tests' throwaway
server (tests/support/postgres.py).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

SUPERUSER = "commander"
START_TIMEOUT_S = 60
SERVER_USER = "postgres"


class PostgresMissing(RuntimeError):
    """No initdb/pg_ctl on this machine (`make postgres-deps` installs Debian's postgresql)."""


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


class LocalPostgres:
    """One server: its cluster in `<root>/data`, its log `<root>/server.log`, sockets apart.

    `sockets` is separate because a unix socket's path holds 107 bytes at most, which a
    checkout's path can exceed.
    """

    def __init__(self, root: Path, sockets: Path) -> None:
        self.bin = pg_bin()
        self.root = root
        self.data = root / "data"
        self.sockets = sockets
        self.port = 0
        self.as_postgres = os.geteuid() == 0

    def database_dsn(self, name: str) -> str:
        """A database of this server, as its superuser, over TCP on 127.0.0.1."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    @property
    def initialized(self) -> bool:
        """Whether initdb already made the cluster (a second run reuses it)."""
        return (self.data / "PG_VERSION").exists()

    def initdb(self, *options: str) -> None:
        """Make the cluster with `SUPERUSER` (UTF8, C locale) and `options` (auth, sync)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.give(self.root)
        self.run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8", "--locale=C",
                 *options)  # fmt: skip

    def launch(self, port: int, settings: Sequence[str] = ()) -> None:
        """Start on 127.0.0.1:`port` and the socket directory; wait until it accepts."""
        self.sockets.mkdir(parents=True, exist_ok=True)
        self.give(self.sockets)
        self.port = port
        options = " ".join(
            [f"-p {port}", f"-k {self.sockets}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {setting}" for setting in settings]
        )
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                 "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start")  # fmt: skip

    def running(self) -> bool:
        """Whether a server runs on this cluster (one an earlier run left behind, say)."""
        if not self.data.exists():
            return False
        return self.run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def shutdown(self, mode: str = "fast") -> bool:
        """Stop the server if one runs (`fast`: roll back sessions, checkpoint); True if it did."""
        if not (self.data / "postmaster.pid").exists():
            return False
        done = self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)
        if done.returncode != 0 and mode != "immediate":
            return self.shutdown("immediate")
        return done.returncode == 0

    def log(self) -> str:
        """What the server wrote to its log so far."""
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def give(self, path: Path) -> None:
        """Hand `path` to the server's user when root; the server wants it private (0700)."""
        if self.as_postgres:
            shutil.chown(path, SERVER_USER, SERVER_USER)
            unreachable = blocking_ancestor(path.resolve().parent, SERVER_USER)
            if unreachable is not None:
                raise PermissionError(
                    f"the {SERVER_USER} user cannot enter {unreachable}, above {path}:"
                    " PostgreSQL runs as that user (chmod o+x it, or run from elsewhere)"
                )
        path.chmod(0o700)

    def run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one of the server's programs, as its user when root; raise on failure if `check`."""
        command = [str(self.bin / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        # A session of its own: a Ctrl-C on the terminal must not kill it half-way.
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30, check=False,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{self.log()}"
            )
        return done


def blocking_ancestor(directory: Path, user: str) -> Path | None:
    """The first directory from `/` down to `directory` that `user` may not enter, if any."""
    account = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, account.pw_gid))
    for path in [*reversed(directory.parents), directory]:
        info = path.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return path
    return None
