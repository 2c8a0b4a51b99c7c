"""The archiver: moves messages out of the hot store into segments, crash-safely.

One move: read up to SEGMENT_ROWS candidates (archived messages, then those past the
age limit); write them to a temporary file, fsync, rename, fsync the directory; read it
back and check it holds exactly those msg_ids; then, in one transaction, record it in the
manifest and delete its rows from the hot tables. A kill before that transaction leaves
the messages hot and a file no manifest names, which the next run deletes; a kill after
it leaves them archived. One archiver runs at a time (a lock on the directory), so no
run takes another's file, not yet recorded, for an orphan.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from relay_app.archive.segment import (
    SUFFIX,
    TMP_SUFFIX,
    WrittenSegment,
    segment_path,
    verify,
    write_segment,
)
from relay_app.store import MessageStore, StoreWriter, WriteOp, WriteResult
from relay_app.store_archive import (
    ArchiveMove,
    ArchiveStore,
    Candidate,
    MergeIndex,
    MoveRaced,
    ReclaimSpace,
    SegmentRecord,
)
from runtime.core.durable import fsync_dir

logger = logging.getLogger(__name__)

ARCHIVE_DIR = "archive"
LOCK_NAME = ".archiver.lock"
# Rows per segment: one move's rows are held in memory and deleted in one transaction,
# so this bounds both the archiver's memory and how long one move holds the writer
# (about 70 ms at 1,000 rows and 220 ms at 5,000, docs/ARCHIVE.md).
SEGMENT_ROWS = 2000
# And at most this much content a move, whatever the rows' sizes.
SEGMENT_BYTES = 16 * 1024 * 1024
# A pause after each move: SQLite's busy handler polls, so without one the archiver could
# take the writer's lock again before a waiting relay gets it.
PAUSE_S = 0.05
DAY_S = 86400.0
RECLAIM_PAGES = 4096  # free pages handed back after each move (16 MiB at 4 KiB a page)
# Pages of full-text index merged a step (about 60 ms of the writer's time); a step after
# each move, then steps until the index is whole, so searches of hot rows stay fast.
MERGE_PAGES = 200
MAX_MERGE_STEPS = 100_000


class ArchiverBusy(Exception):
    """Another archiver holds the archive directory's lock."""


@dataclass(frozen=True, slots=True)
class ArchiveRun:
    """What one run did."""

    segments: int = 0
    moved: int = 0
    orphans_removed: int = 0
    raced: int = 0


def archive_dir(data_dir: str | Path) -> Path:
    """Where a relay's segments live."""
    return Path(data_dir) / ARCHIVE_DIR


class Archiver:
    """Runs moves for one store; `on_step(name)` is called after each step (fault tests)."""

    def __init__(
        self,
        store: MessageStore,
        commit: Callable[[Sequence[WriteOp]], Sequence[WriteResult]],
        directory: Path,
        *,
        after_days: float,
        clock: Callable[[], float] = time.time,
        segment_rows: int = SEGMENT_ROWS,
        pause_s: float = PAUSE_S,
        sleep: Callable[[float], None] = time.sleep,
        on_step: Callable[[str], None] = lambda _step: None,
    ) -> None:
        """Move `store`'s due messages into `directory`, writing through `commit`."""
        if store.archive is None:
            raise ValueError("this store keeps every message hot: it has no archive")
        self._archive: ArchiveStore = store.archive
        self._commit = commit
        self.directory = directory
        self._after_days = after_days
        self._clock = clock
        self._rows = segment_rows
        self._pause_s = pause_s
        self._sleep = sleep
        self._on_step = on_step

    def run_once(self, max_segments: int = 1_000_000) -> ArchiveRun:
        """Sweep orphans, then move segment after segment until nothing is due."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked():
            run = ArchiveRun(orphans_removed=self.sweep_orphans())
            for _ in range(max_segments):
                batch = self._archive.candidates(self._cutoff(), self._rows, SEGMENT_BYTES)
                if not batch:
                    break
                moved = self.move(batch)
                run = ArchiveRun(run.segments + (moved > 0), run.moved + moved,
                                 run.orphans_removed, run.raced + (moved == 0))  # fmt: skip
                if moved == 0:
                    break
                self._sleep(self._pause_s)
            if run.moved:
                self.merge_index()
        return run

    def merge_index(self) -> int:
        """Merge the hot full-text index step by step until it has nothing left to merge;
        return the steps taken (each its own short transaction, a pause between)."""
        for step in range(MAX_MERGE_STEPS):
            if not self._commit([MergeIndex(MERGE_PAGES)])[0].inserted:
                return step
            self._sleep(self._pause_s)
        return MAX_MERGE_STEPS

    def _cutoff(self) -> float | None:
        if self._after_days <= 0:
            return None
        return self._clock() - self._after_days * DAY_S

    def move(self, batch: Sequence[Candidate]) -> int:
        """Move one segment's worth; 0 when a row changed meanwhile (the file is removed)."""
        archived = [_as_archived(c) for c in batch]
        name = (
            f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(self._clock()))}-{secrets.token_hex(4)}"
        )
        written = write_segment(self.directory, name, archived, on_frame=self._on_step)
        self._on_step("written")
        path = segment_path(self.directory, name)
        verify(path, written.index, written.rows, written.msg_ids_sha256)
        self._on_step("verified")
        try:
            self._commit([_move_op(written, batch, self._clock())])
        except MoveRaced as exc:
            logger.info("archive move of %d rows skipped: %s", len(batch), exc)
            _unlink(path)
            return 0
        self._on_step("recorded")
        self._commit([MergeIndex(MERGE_PAGES)])
        self._commit([ReclaimSpace(RECLAIM_PAGES)])
        return written.rows

    def sweep_orphans(self) -> int:
        """Delete files no manifest entry names: temporaries and unrecorded segments."""
        named = {s.name + SUFFIX for s in self._archive.manifest().segments}
        removed = 0
        for path in self.directory.iterdir():
            stray = path.name.endswith(TMP_SUFFIX) or (
                path.name.endswith(SUFFIX) and path.name not in named
            )
            # Only files are the archiver's: a directory there (an operator's) would make
            # unlink fail and every run after it.
            if stray and path.is_file():
                logger.warning("removing %s: no manifest entry names it", path.name)
                _unlink(path)
                removed += 1
        return removed

    def _locked(self) -> AbstractContextManager[None]:
        return Archiver.lock_for(self.directory, wait=False)

    @staticmethod
    @contextmanager
    def lock_for(directory: Path, *, wait: bool) -> Iterator[None]:
        """Hold the archive directory's lock (ArchiverBusy if taken and not `wait`)."""
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as exc:
                raise ArchiverBusy(f"another archiver is running in {directory}") from exc
            yield
        finally:
            os.close(fd)


def _as_archived(candidate: Candidate) -> Candidate:
    """The candidate as the archive holds it: status archived, whatever it was."""
    return Candidate({**candidate.message, "status": "archived"}, candidate.text)


def _move_op(written: WrittenSegment, batch: Sequence[Candidate], now: float) -> ArchiveMove:
    frames = written.index.frames
    record = SegmentRecord(0, written.name, written.rows, written.size, written.msg_ids_sha256,
                           min(f.min_ts for f in frames), max(f.max_ts for f in frames),
                           written.index.encode(), now)  # fmt: skip
    return ArchiveMove(
        segment=record,
        moved=tuple((c.message["id"], c.message["status"]) for c in batch),
        placed=written.placed,
        texts=tuple((c.message["id"], c.text) for c in batch),
    )


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def commit_with(writer: StoreWriter) -> Callable[[Sequence[WriteOp]], Sequence[WriteResult]]:
    """A `commit` that applies ops on `writer` directly (the archiver's own process)."""
    return lambda ops: writer.write(ops, time.time())
