"""The archive's side of the store: the manifest, where archived msg_ids lie, and the moves.

Segment files live under `<data_dir>/archive/` (`relay_app.archive`). The store keeps what
must change in the same transaction as the hot rows: the manifest of segments, each
archived msg_id's place (which also keeps a resent msg_id from being stored a second
time), and the rows restored out of a segment, hidden there from then on. A move records
its segment and deletes the hot rows in one transaction, so a message is always in
exactly one visible place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from relay_app.store_inbox import Audit


@dataclass(frozen=True, slots=True)
class Candidate:
    """A message to archive or restore: its wire dict with `id`, `received_at` and
    `status` (content an `orjson.Fragment` of its JSON), and the text the index holds."""

    message: dict[str, Any]
    text: str


@dataclass(frozen=True, slots=True)
class SegmentRecord:
    """One manifest entry: a segment file and what it must hold (`id` 0 until recorded)."""

    id: int
    name: str
    rows: int
    size: int
    msg_ids_sha256: str
    min_ts: float
    max_ts: float
    index: bytes  # relay_app.archive.segment.SegmentIndex, encoded
    created_at: float


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every recorded segment and the (segment id, msg_id) pairs restored out of them."""

    generation: int
    segments: tuple[SegmentRecord, ...]
    hidden: frozenset[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class ArchiveMove:
    """Record a written segment and delete its rows from the hot tables, all or nothing.

    `moved` is each row's (id, status as read): if any row changed or left since, the
    move raises MoveRaced and changes nothing. `placed` is each message's (msg_id, frame,
    node_id, agent_id, timestamp); `texts` its (id, indexed text), to take out of the
    full-text index.
    """

    segment: SegmentRecord
    moved: tuple[tuple[int, str], ...]
    placed: tuple[tuple[str, int, str, str, float], ...]
    texts: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class ArchiveRestore:
    """Bring archived messages back to the hot tables as acknowledged, hidden in their
    segment from then on; `rows` are (segment id, archived message with its text)."""

    rows: tuple[tuple[int, Candidate], ...]
    audit: Audit | None = None


@dataclass(frozen=True, slots=True)
class ReclaimSpace:
    """Return up to `pages` free pages of the hot file to the file system, where it can."""

    pages: int


@dataclass(frozen=True, slots=True)
class MergeIndex:
    """Merge the full-text index's segments by about `pages` pages of work, dropping what
    moved messages left there; the result counts 1 when there was work, 0 when none."""

    pages: int


ArchiveOp = ArchiveMove | ArchiveRestore | ReclaimSpace | MergeIndex
ARCHIVE_OPS = (ArchiveMove, ArchiveRestore, ReclaimSpace, MergeIndex)


class MoveRaced(Exception):
    """A row of a move changed or left the hot tables after it was read: nothing moved."""


class ArchiveStore(Protocol):
    """The archive's reads of the store (its writes are the ops above)."""

    def candidates(
        self, aged_before: float | None, limit: int, max_bytes: int = 2**62
    ) -> list[Candidate]:
        """Up to `limit` hot messages due for the archive: archived ones, then those
        received before `aged_before` (None: none by age) and never restored; fewer
        once their content passes `max_bytes` (always one at least)."""

    def generation(self) -> int:
        """A number that changes whenever the manifest or the hidden rows do."""

    def manifest(self, index_after: int = 0) -> Manifest:
        """The whole manifest as of one read; segments' indexes only for ids past
        `index_after` (b"" for the others: a reader already holds what it needs of them)."""

    def frame_index(self, segment_id: int) -> bytes | None:
        """One segment's recorded index, or None when no such segment is recorded."""

    def locate(self, msg_ids: tuple[str, ...]) -> dict[str, tuple[int, int]]:
        """msg_id -> (segment id, frame), for those of `msg_ids` in the archive."""

    def free_pages(self) -> int:
        """Pages of the hot file free for reuse."""


# How the engine's full-text index cuts text, told a character at a time: for each of
# the characters, its folded form inside a word ("" when folded away), or None when it
# separates words. The archive cuts words by it (`relay_app.archive.tokens`), so a search
# finds among archived messages what the index finds among hot ones.
WordClassifier = Callable[[Sequence[str]], list[str | None]]
_classifier: list[WordClassifier] = []


def use_word_classifier(classifier: WordClassifier) -> None:
    """Cut archived words as `classifier` says (an engine's store calls this on opening)."""
    _classifier[:] = [classifier]


def word_classifier() -> WordClassifier | None:
    """The classifier an engine gave, or None before any store with an archive opened."""
    return _classifier[0] if _classifier else None
