"""`BackupEngine` on SQLite: the cluster database file of a data dir, copied and checked.

`copy_to` uses SQLite's online backup API in ONE step (`pages=-1`): one step reads inside
one read transaction, so in WAL mode the copy is the corpus of one moment while the relay
goes on committing to the WAL (only the checkpoint waits for the copy to end, and the WAL
grows meanwhile). Copied in several steps, a write between two steps would restart the
copy from its first page, so under steady ingest it might never end. The copy is left in
rollback-journal mode: one self-contained file, no WAL beside it (the relay turns WAL
back on when it opens it).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType

from relay_app.store_backup import Counts
from relay_app.stores.sqlite import DB_RELATIVE_PATH
from relay_app.stores.sqlite_schema import NEW_GENERATION
from runtime.core import sqlite as rsqlite
from runtime.core.durable import fsync_path

# integrity_check stops after this many problems: enough to say what is wrong.
MAX_ERRORS = 10


class SqliteBackup:
    """`BackupEngine` for the SQLite store."""

    def database(self, root: Path) -> Path:
        """`<root>/messages/cluster_messages.db`."""
        return root / DB_RELATIVE_PATH

    def open(self, path: Path, *, live: bool) -> SqliteCorpusFile:
        """Open an existing database file."""
        return SqliteCorpusFile(path, live=live)


class SqliteCorpusFile:
    """`CorpusFile`: a live relay's cluster database (`live`) or a backup's (read-only)."""

    def __init__(self, path: Path, *, live: bool) -> None:
        """Open it; never creates one. Read-only opens roll back and checkpoint nothing."""
        if not path.is_file():
            raise FileNotFoundError(f"no relay database at {path}")
        if live:
            # Read-write: a reader of a WAL database may need to create its -shm.
            self._conn = sqlite3.connect(path, isolation_level=None)
            self._conn.execute(f"PRAGMA busy_timeout = {rsqlite.BUSY_TIMEOUT_MS}")
        else:
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)

    def counts(self) -> Counts:
        """Hot and archived messages and segments, read in one statement (one snapshot)."""
        row = self._conn.execute(
            "SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM archived_ids),"
            " (SELECT COUNT(*) FROM archive_segments)"
        ).fetchone()
        return Counts(int(row[0]), int(row[1]), int(row[2]))

    def integrity(self) -> list[str]:
        """integrity_check's complaints, one line each; [] when it says ok."""
        rows = self._conn.execute(f"PRAGMA integrity_check({MAX_ERRORS})").fetchall()
        lines = [" ".join(str(r[0]).split()) for r in rows]  # a row can span lines
        return [] if lines == ["ok"] else lines

    def segments(self) -> list[tuple[str, int]]:
        """(name, size) of every segment the manifest names."""
        rows = self._conn.execute("SELECT name, size FROM archive_segments ORDER BY id")
        return [(str(name), int(size)) for name, size in rows]

    def files(self) -> list[tuple[str, int]]:
        """(path relative to the data dir, size) of every uploaded file recorded."""
        rows = self._conn.execute("SELECT path, size FROM files ORDER BY file_id")
        return [(str(path), int(size)) for path, size in rows]

    def copy_to(self, target: Path, *, new_generation: bool = False) -> int | None:
        """Copy the database into the new file `target` in one step, durably; with
        `new_generation`, give the copy a new one and return it."""
        target.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        dest = sqlite3.connect(target, isolation_level=None)
        try:
            dest.execute("PRAGMA synchronous = FULL")
            self._conn.backup(dest, pages=-1)
            dest.execute("PRAGMA journal_mode = DELETE")
            generation = _renew_generation(dest) if new_generation else None
        finally:
            dest.close()
        fsync_path(target)
        return generation

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> SqliteCorpusFile:
        """Use in a `with` block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close on leaving it."""
        self.close()


def _renew_generation(conn: sqlite3.Connection) -> int | None:
    """A new generation for the copy; None for a backup from before store_meta (the relay
    gives it its first one when it migrates it)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'store_meta'").fetchone():
        return None
    conn.execute(NEW_GENERATION)
    row = conn.execute("SELECT value FROM store_meta WHERE key = 'generation'").fetchone()
    return int(row[0])
