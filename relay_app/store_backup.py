"""Backup's side of the store: where an engine keeps its database file, and that file read.

`relay_app.backup` and `relay_app.backup_restore` hold a `BackupEngine`; the one
implementation, `relay_app.stores.sqlite_backup`, holds the SQL. `relay_app.cli` (a
module that builds stores) hands it to the commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Counts:
    """What a copy of the corpus holds."""

    messages: int
    archived: int
    segments: int

    @property
    def total(self) -> int:
        """Hot and archived messages."""
        return self.messages + self.archived


class CorpusFile(Protocol):
    """One database file, open; the engine's errors are `runtime.core.sqlite.DatabaseError`."""

    def counts(self) -> Counts:
        """Hot and archived messages and segments, read as one snapshot."""
        ...

    def integrity(self) -> list[str]:
        """The engine's own integrity check's complaints; [] when sound."""
        ...

    def segments(self) -> list[tuple[str, int]]:
        """(name, size) of every segment the manifest names."""
        ...

    def files(self) -> list[tuple[str, int]]:
        """(path relative to the data dir, size) of every uploaded file recorded."""
        ...

    def copy_to(self, target: Path, *, new_generation: bool = False) -> int | None:
        """Copy the database, consistently and durably, into the new file `target`; with
        `new_generation`, give the copy a new generation and return it."""
        ...

    def close(self) -> None:
        """Close it."""
        ...


class BackupEngine(Protocol):
    """How backup and restore reach an engine's database file."""

    def database(self, root: Path) -> Path:
        """The database file of a data directory or a backup directory."""
        ...

    def open(self, path: Path, *, live: bool) -> CorpusFile:
        """Open an existing database (FileNotFoundError if none): a running relay's when
        `live`, else read-only, changing nothing."""
        ...
