"""`commander-relay backup DEST`: an online, verified copy of a SQLite relay's data.

DEST is laid out like a data directory: `messages/cluster_messages.db`, `archive/` (the
segments) and `files/` (uploaded files). The steps, while the relay runs and ingests:

1. count the corpus (hot + archived messages): the copy must hold at least that many;
2. copy the database in one consistent step (`relay_app.store_backup`) to a temporary name
   in DEST, fsynced;
3. copy the segments and files DEST lacks: after the database, so every one the copy
   names is already on disk (neither is removed while a manifest or record names it);
4. verify the copy (`relay_app.backup_check`): integrity_check, the count, every segment
   and file it names, with its size;
5. only then rename it over DEST's previous database and fsync the directory: a copy
   that fails verification never replaces an earlier good backup.

Errors::

    BackupError          root; str(exc) says what
    ├── BackupRefused    usage: not a SQLite relay, no database, a relay running (exit 2)
    └── BackupDamaged    the copy or its source failed verification (exit 1)
"""

from __future__ import annotations

import os
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from relay_app.backup_check import describe, problems
from relay_app.backup_copy import Copied, copy_immutable
from relay_app.store_backup import BackupEngine, Counts
from runtime.core import sqlite as rsqlite
from runtime.core.durable import fsync_dir


class BackupError(Exception):
    """A backup or restore did not happen; the message says why."""


class BackupRefused(BackupError):
    """The command does not apply here (exit 2): nothing was changed."""


class BackupDamaged(BackupError):
    """A database or its segments failed verification (exit 1)."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What one backup copied and found."""

    counts: Counts
    segments_copied: Copied
    files_copied: Copied
    database_bytes: int
    seconds: float

    @property
    def bytes(self) -> int:
        """Bytes written: the database and the files copied."""
        return self.database_bytes + self.segments_copied.bytes + self.files_copied.bytes

    def summary(self) -> str:
        """The one line the command prints."""
        return (
            f"{self.counts.messages} messages, {self.counts.archived} archived,"
            f" {self.counts.segments} segments ({self.segments_copied.files} copied),"
            f" {self.files_copied.files} files copied, {self.bytes} bytes,"
            f" {self.seconds:.1f} s"
        )


def take_backup(engine: BackupEngine, data_dir: Path, dest: Path) -> BackupReport:
    """Copy the relay's data in `data_dir` into `dest`, verify it, and say what it holds."""
    started = time.monotonic()
    if dest.resolve() == data_dir.resolve():
        raise BackupRefused(f"{dest} is the relay's own data directory")
    final = engine.database(dest)
    tmp = final.with_name(final.name + ".tmp")
    source = engine.database(data_dir)
    try:
        with closing(engine.open(source, live=True)) as corpus:
            before = corpus.counts()
            corpus.copy_to(tmp)
    except FileNotFoundError as exc:
        raise BackupRefused(str(exc)) from exc
    except rsqlite.DatabaseError as exc:
        tmp.unlink(missing_ok=True)
        raise BackupDamaged(f"the copy of {source} failed: {exc}") from exc
    size = tmp.stat().st_size
    segments, files = copy_immutable(data_dir, dest)
    counts = _verify(engine, tmp, dest, before)
    os.replace(tmp, final)
    fsync_dir(final.parent)
    return BackupReport(counts, segments, files, size, time.monotonic() - started)


def _verify(engine: BackupEngine, copy: Path, root: Path, before: Counts) -> Counts:
    """What the copy holds, or BackupDamaged (the copy is then removed)."""
    found, counts = problems(engine, copy, root)
    if counts is not None and counts.total < before.total:
        found.append(f"the copy holds {counts.total} messages, the source held {before.total}")
    if found or counts is None:
        copy.unlink(missing_ok=True)
        raise BackupDamaged(f"verification failed, nothing replaced: {describe(found)}")
    return counts
