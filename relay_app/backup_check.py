"""Verifying a backup: the database reads whole, and every segment and file it names is there.

`problems(engine, database, root)` is what backup runs on its fresh copy and restore on the
backup it is given: `PRAGMA integrity_check`, then each segment of the manifest under
`root/archive` with its recorded size, then each recorded upload under `root`.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from relay_app.archive.mover import ARCHIVE_DIR
from relay_app.archive.segment import SUFFIX as SEGMENT_SUFFIX
from relay_app.store_backup import BackupEngine, Counts
from runtime.core import sqlite as rsqlite

# Problems listed one by one before "... and N more".
SHOWN = 5


def problems(engine: BackupEngine, database: Path, root: Path) -> tuple[list[str], Counts | None]:
    """What is wrong with the backup at `database` whose segments and files lie under
    `root` ([] if sound), and what it holds (None if it does not read whole)."""
    try:
        with closing(engine.open(database, live=False)) as corpus:
            found = [f"integrity_check: {line}" for line in corpus.integrity()]
            if found:
                return found, None
            found += _size_problems(root / ARCHIVE_DIR, corpus.segments(), SEGMENT_SUFFIX)
            found += _size_problems(root, corpus.files(), "")
            return found, corpus.counts()
    except FileNotFoundError as exc:
        return [str(exc)], None
    except rsqlite.DatabaseError as exc:
        return [f"{database} does not read: {exc}"], None


def _size_problems(directory: Path, named: list[tuple[str, int]], suffix: str) -> list[str]:
    found = []
    what = "segment" if suffix else "file"
    for name, size in named:
        path = directory / (name + suffix)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            found.append(f"{what} {path} is missing")
            continue
        if actual != size:
            found.append(f"{what} {path} has {actual} bytes, recorded {size}")
    return found


def describe(found: list[str]) -> str:
    """The first few problems on one line."""
    shown = "; ".join(found[:SHOWN])
    return shown if len(found) <= SHOWN else f"{shown}; ... and {len(found) - SHOWN} more"
