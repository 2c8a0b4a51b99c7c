"""`commander-relay restore SRC`: put a backup in place of a stopped relay's database.

Under the data directory's lock (`relay_app.relay_lock`: refused while a relay runs, and
no relay starts meanwhile):

1. verify SRC as backup verifies its copy (integrity_check, segments, files);
2. copy its database to `cluster_messages.db.restoring`, give the copy a new generation
   (nodes that see it change compare what they hold and refill what the relay lacks),
   fsync it;
3. keep the current database as `cluster_messages.db.before-restore-<unix time>`, with
   its `-wal`, `-shm` and `-journal` files: a WAL left beside the restored database would
   be replayed into it and corrupt it;
4. rename the restored copy into place and fsync the directory;
5. copy back the segments and files SRC holds and the data directory lacks.

Interrupted before step 4 ends, the data directory holds the old database (or, between
3 and 4, the old one without its WAL, which the kept copy still has): run restore again.
"""

from __future__ import annotations

import os
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from relay_app.archive.mover import ARCHIVE_DIR
from relay_app.backup import BackupDamaged, BackupRefused
from relay_app.backup_check import describe, problems
from relay_app.backup_copy import FILES_DIR, Copied, copy_immutable
from relay_app.relay_lock import LOCK_NAME, DataDirBusy, acquire, release
from relay_app.store_backup import BackupEngine, Counts
from runtime.core import sqlite as rsqlite
from runtime.core.durable import fsync_dir

# A database's companions: the WAL and its index, and a rollback journal.
COMPANIONS = ("-wal", "-shm", "-journal")
RESTORING = ".restoring"


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What one restore put in place."""

    counts: Counts
    generation: int | None  # None: the relay gives one when it migrates the backup
    kept: Path | None
    segments_copied: Copied
    files_copied: Copied
    seconds: float

    def summary(self) -> str:
        """The one line the command prints."""
        kept = f"previous database kept as {self.kept}" if self.kept else "no previous database"
        new = "at the next start" if self.generation is None else str(self.generation)
        return (
            f"{self.counts.messages} messages, {self.counts.archived} archived,"
            f" {self.counts.segments} segments ({self.segments_copied.files} copied back),"
            f" {self.files_copied.files} files copied back, new generation {new};"
            f" {kept}; {self.seconds:.1f} s"
        )


def restore(
    engine: BackupEngine, data_dir: Path, src: Path, clock: float | None = None
) -> RestoreReport:
    """Replace the database of the stopped relay in `data_dir` with the backup in `src`."""
    started = time.monotonic()
    database, backup = engine.database(data_dir), engine.database(src)
    if not backup.is_file():
        raise BackupRefused(f"{src} is not a backup: no {backup}")
    try:
        lock = acquire(data_dir, holder="restore")
    except DataDirBusy as exc:
        raise BackupRefused(f"stop the relay first: {exc}") from exc
    try:
        counts = _verified(engine, backup, src)
        restoring, generation = _copy_in(engine, backup, database)
        kept = _swap(restoring, database, time.time() if clock is None else clock)
        segments, files = copy_immutable(src, data_dir)
        give_to_owner(data_dir, database.parent)
    finally:
        release(lock)
    return RestoreReport(counts, generation, kept, segments, files, time.monotonic() - started)


def _verified(engine: BackupEngine, backup: Path, src: Path) -> Counts:
    found, counts = problems(engine, backup, src)
    if found or counts is None:
        raise BackupDamaged(f"{src} failed verification, nothing changed: {describe(found)}")
    return counts


def _copy_in(engine: BackupEngine, backup: Path, target: Path) -> tuple[Path, int | None]:
    """The backup copied beside `target` with a new generation: (its path, the generation)."""
    restoring = target.with_name(target.name + RESTORING)
    try:
        with closing(engine.open(backup, live=False)) as corpus:
            generation = corpus.copy_to(restoring, new_generation=True)
    except rsqlite.DatabaseError as exc:
        restoring.unlink(missing_ok=True)
        raise BackupDamaged(f"the copy of {backup} failed: {exc}") from exc
    return restoring, generation


def _swap(restoring: Path, target: Path, now: float) -> Path | None:
    """Keep the current database (with its companions) aside, put the restored one in."""
    kept = _unused(target.with_name(f"{target.name}.before-restore-{int(now)}"))
    had_database = target.exists()
    if had_database:
        os.link(target, kept)  # until the rename below, `target` still names a database
    for suffix in COMPANIONS:
        part = target.with_name(target.name + suffix)
        if part.exists():
            os.replace(part, kept.with_name(kept.name + suffix))
    os.replace(restoring, target)
    fsync_dir(target.parent)
    return kept if had_database else None


def _unused(path: Path) -> Path:
    """`path`, or `path.N` for the first N free (two restores within one second)."""
    candidate, n = path, 1
    while any(candidate.with_name(candidate.name + s).exists() for s in ("", *COMPANIONS)):
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def give_to_owner(data_dir: Path, database_dir: Path) -> None:
    """Run as root for a relay that runs as its own user, hand what restore made (owned by
    root) to the data directory's owner: else the relay could not write its database."""
    owner = data_dir.stat()
    if os.geteuid() != 0 or owner.st_uid == 0:
        return
    made = [data_dir / LOCK_NAME]
    for part in (database_dir, data_dir / ARCHIVE_DIR, data_dir / FILES_DIR):
        if part.exists():
            made += [part, *part.rglob("*")]
    for path in made:
        if path.exists() and path.lstat().st_uid == 0:
            os.lchown(path, owner.st_uid, owner.st_gid)
