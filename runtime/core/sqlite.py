"""SQLite discipline shared by every database of the project.

`connect` opens a connection in autocommit mode (transactions are explicit),
with WAL, a busy timeout and foreign keys; `migrate` applies numbered
migrations, one transaction each, tracked in `PRAGMA user_version`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
# What any of the project's databases raises, named here so callers need not import sqlite3.
DatabaseError = sqlite3.Error
# SQLITE_CORRUPT and SQLITE_NOTADB: the file itself is damaged, not busy or out of space.
DAMAGED_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
BUSY_TIMEOUT_MS = 5000


def connect(
    path: str | Path,
    *,
    synchronous: str = "FULL",
    read_only: bool = False,
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Open a connection with the project's pragmas; `synchronous` defaults to durable."""
    if synchronous not in SYNCHRONOUS_LEVELS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS_LEVELS}")
    if read_only:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=check_same_thread
        )
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not read_only:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


# Values per `IN (...)` list: far below SQLite's bound on a statement's parameters.
IN_CHUNK = 500


def in_chunks(values: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    """The values IN_CHUNK at a time, each chunk with its placeholders ("?,?,...")."""
    for start in range(0, len(values), IN_CHUNK):
        chunk = list(values[start : start + IN_CHUNK])
        yield ",".join("?" * len(chunk)), chunk


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """Run a block in one explicit transaction: commit on success, roll back on error."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, migrations: Sequence[Sequence[str]]) -> int:
    """Apply migrations[user_version:], one transaction each; return the new version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(migrations):
        raise RuntimeError(
            f"database schema version {version} is newer than this code knows ({len(migrations)})"
        )
    for number, statements in enumerate(migrations[version:], start=version + 1):
        with transaction(conn):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return len(migrations)


def is_disk_full(exc: sqlite3.Error) -> bool:
    """Tell whether SQLite refused a write because the disk or the page limit is full."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)


def is_damaged(exc: BaseException) -> bool:
    """Whether a database error says the file itself is damaged (not busy or out of space)."""
    return getattr(exc, "sqlite_errorcode", None) in DAMAGED_CODES


def move_aside(path: Path, now: float) -> Path:
    """Rename a damaged database (and its WAL and shared-memory files) out of the way."""
    target = path.with_name(f"{path.name}.damaged-{int(now)}")
    for suffix in ("-wal", "-shm", ""):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(target.with_name(target.name + suffix))
    return target


def filter_terms(
    equal: Iterable[tuple[str, object]] = (),
    *,
    since: float | None = None,
    until: float | None = None,
    timestamp: str = "timestamp",
) -> tuple[list[str], list[Any]]:
    """WHERE terms and their bound values: `column = ?` for each pair whose value is set,
    then `timestamp >= since` and `timestamp < until` where given.

    Column names are pasted into the SQL: callers pass constants only.
    """
    terms: list[str] = []
    values: list[Any] = []
    for column, value in equal:
        if value is not None:
            terms.append(f"{column} = ?")
            values.append(value)
    if since is not None:
        terms.append(f"{timestamp} >= ?")
        values.append(since)
    if until is not None:
        terms.append(f"{timestamp} < ?")
        values.append(until)
    return terms, values
