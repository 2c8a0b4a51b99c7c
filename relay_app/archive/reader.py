"""Reads of the archive: a message by msg_id, and pages and counts scanned frame by frame.

The manifest is read again whenever the store's archive generation moves, so a running
relay sees segments another process recorded. A frame that does not read back as its
index says is skipped by listings and named in `damaged` (for /healthz and /metrics); a
lookup that needs it answers 503 rather than "not found".
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from relay_app.archive.matching import ArchiveQuery
from relay_app.archive.prefilter import Prefilter
from relay_app.archive.segment import (
    Frame,
    SegmentDamaged,
    SegmentIndex,
    frame_lines,
    parse_line,
    read_frame,
    segment_path,
    verify,
)
from relay_app.errors import QueryTooSlow, StoreUnavailable
from relay_app.store_archive import ArchiveStore, SegmentRecord

logger = logging.getLogger(__name__)

Key = tuple[float, ...]
# A heap entry: the row's key negated (heapq pops the smallest), its frame's number, the row.
Ranked = tuple[Key, int, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Order:
    """A scan order: by (timestamp, id) or by id alone, newest first unless `ascending`."""

    by_time: bool = True
    ascending: bool = False

    def key(self, row: dict[str, Any]) -> Key:
        """The row's place, larger first (negated when ascending)."""
        key = (row["timestamp"], row["id"]) if self.by_time else (row["id"],)
        return tuple(-k for k in key) if self.ascending else key

    def upper(self, frame: Frame) -> Key:
        """A key no row of the frame passes."""
        if self.ascending:
            return (-frame.min_ts, -frame.min_id) if self.by_time else (-frame.min_id,)
        return (frame.max_ts, frame.max_id) if self.by_time else (frame.max_id,)

    def lower(self, frame: Frame) -> Key:
        """A key every row of the frame passes."""
        if self.ascending:
            return (-frame.max_ts, -frame.max_id) if self.by_time else (-frame.max_id,)
        return (frame.min_ts, frame.min_id) if self.by_time else (frame.min_id,)

    def cursor(self, timestamp: float, row_id: int) -> Key:
        """A keyset position in this order's keys."""
        key = (timestamp, row_id) if self.by_time else (row_id,)
        return tuple(-k for k in key) if self.ascending else key


@dataclass(frozen=True, slots=True)
class _Segment:
    record: SegmentRecord
    index: SegmentIndex
    path: Path


class ArchiveReader:
    """The archive's reads for one relay (thread-safe)."""

    def __init__(
        self, store: ArchiveStore, directory: Path, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Read segments under `directory`, as `store`'s manifest names them."""
        self._store = store
        self.directory = directory
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = -1
        self._segments: dict[int, _Segment] = {}
        self._hidden: frozenset[tuple[int, str]] = frozenset()
        self.damaged: dict[str, str] = {}  # segment name -> what is wrong with it

    def _current(self) -> tuple[dict[int, _Segment], frozenset[tuple[int, str]]]:
        generation = self._store.generation()
        with self._lock:
            if generation != self._generation:
                known = self._segments
                manifest = self._store.manifest(index_after=max(known, default=0))
                self._segments = {r.id: known.get(r.id) or self._load(r) for r in manifest.segments}
                self._check_sizes()
                self._hidden = manifest.hidden
                self._generation = manifest.generation
            return self._segments, self._hidden

    def _load(self, record: SegmentRecord) -> _Segment:
        """A new segment's frames, ranges only: filters are read when a query needs them,
        so the relay's memory does not grow with the archive."""
        try:
            index = SegmentIndex.decode(record.index, filters=False)
        except SegmentDamaged as exc:
            self._mark(record.name, str(exc))
            index = SegmentIndex(())
        path = segment_path(self.directory, record.name)
        return _Segment(replace(record, index=b""), index, path)

    def _check_sizes(self) -> None:
        """Name missing and truncated segments at once (their content is checked on read)."""
        for segment in self._segments.values():
            try:
                size = segment.path.stat().st_size
            except OSError as exc:
                self._mark(segment.record.name, f"cannot be read: {exc.strerror}")
                continue
            if size != segment.record.size:
                self._mark(segment.record.name, f"{size} bytes, recorded {segment.record.size}")

    def _mark(self, name: str, problem: str) -> None:
        if name not in self.damaged:
            logger.error("archive segment %s is damaged: %s", name, problem)
        self.damaged[name] = problem

    def damaged_now(self) -> dict[str, str]:
        """The damaged segments, every file's size looked at again (one stat a segment):
        a file cut short or gone since the manifest was read is named before a read trips."""
        self._current()
        with self._lock:
            self._check_sizes()
            return dict(self.damaged)

    def total(self) -> int:
        """Messages the archive holds (restored ones left out)."""
        segments, hidden = self._current()
        return sum(s.record.rows for s in segments.values()) - len(hidden)

    def max_id(self) -> int:
        """The largest row id the archive holds (0 when empty), restored rows included."""
        segments, _ = self._current()
        return max((f.max_id for s in segments.values() for f in s.index.frames), default=0)

    def size(self) -> int:
        """Bytes of segment files, as recorded."""
        segments, _ = self._current()
        return sum(s.record.size for s in segments.values())

    def lookup(self, msg_id: str) -> tuple[int, dict[str, Any]] | None:
        """(segment id, message) of an archived msg_id, or None; 503 when unreadable."""
        return self.lookup_many((msg_id,)).get(msg_id)

    def lookup_many(self, msg_ids: tuple[str, ...]) -> dict[str, tuple[int, dict[str, Any]]]:
        """msg_id -> (segment id, message), for those of `msg_ids` archived."""
        by_frame: dict[tuple[int, int], set[str]] = {}
        for msg_id, place in self._store.locate(msg_ids).items():
            by_frame.setdefault(place, set()).add(msg_id)
        segments, _ = self._current()
        found: dict[str, tuple[int, dict[str, Any]]] = {}
        # Each frame is read once, however many of its messages are asked for (a selection
        # of 500 restored from one frame read it 500 times).
        for (segment_id, frame_no), wanted in by_frame.items():
            segment = segments.get(segment_id)
            if segment is None or frame_no >= len(segment.index.frames):
                raise StoreUnavailable(f"archived messages {sorted(wanted)[:3]} are in no"
                                       " readable segment")  # fmt: skip
            try:
                rows = read_frame(segment.path, segment.index.frames[frame_no])
            except SegmentDamaged as exc:
                self._mark(segment.record.name, str(exc))
                raise StoreUnavailable(f"archived messages are unreadable: {exc}") from exc
            found.update((r["msg_id"], (segment_id, r)) for r in rows if r["msg_id"] in wanted)
        return found

    def located(self, msg_ids: tuple[str, ...]) -> set[str]:
        """Those of `msg_ids` the archive holds (no segment is read)."""
        return set(self._store.locate(msg_ids)) if msg_ids else set()

    def page(
        self,
        query: ArchiveQuery,
        order: Order,
        limit: int,
        *,
        start: Key | None = None,
        budget_s: float = math.inf,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` rows in `order`, strictly past `start`, and whether more follow;
        QueryTooSlow past `budget_s`."""
        deadline = self._clock() + budget_s
        want = limit + 1
        best: list[Ranked] = []
        out: list[dict[str, Any]] = []
        hidden, frames = self._frames(query, order, start)
        test = query.prefilter()
        frames.sort(key=lambda f: order.upper(f[1]), reverse=True)
        for n, (segment, frame) in enumerate(frames):
            _emit(best, out, order.upper(frame), want)
            if len(out) >= want:
                break
            if self._clock() > deadline:
                raise QueryTooSlow("the archive took too long to read; narrow the filters")
            for row in self._rows(segment, frame, query, hidden, test):
                key = order.key(row)
                if start is None or key < start:
                    heapq.heappush(best, (tuple(-k for k in key), n, row))
            if len(best) > 4 * want:  # rows past the best `want` can never be shown
                best = heapq.nsmallest(want - len(out), best)
                heapq.heapify(best)
        _emit(best, out, None, want)
        return out[:limit], len(out) > limit

    def scan(self, query: ArchiveQuery, order: Order) -> Iterator[dict[str, Any]]:
        """Every row matching `query`, frame by frame in file order (not sorted)."""
        hidden, frames = self._frames(query, order, None)
        test = query.prefilter()
        for segment, frame in frames:
            yield from self._rows(segment, frame, query, hidden, test)

    def count(self, query: ArchiveQuery, cap: int, budget_s: float = math.inf) -> int | None:
        """Rows matching `query`, at most `cap`; None past `budget_s`."""
        deadline = self._clock() + budget_s
        found = 0
        hidden, frames = self._frames(query, Order(), None)
        test = query.prefilter()
        for segment, frame in frames:
            if self._clock() > deadline:
                return None
            found += sum(1 for _ in self._rows(segment, frame, query, hidden, test))
            if found >= cap:
                return cap
        return found

    def _frames(
        self, query: ArchiveQuery, order: Order, start: Key | None
    ) -> tuple[frozenset[tuple[int, str]], list[tuple[_Segment, Frame]]]:
        """The hidden rows and the frames that may hold rows of `query` past `start`."""
        segments, hidden = self._current()
        masks = query.masks()
        frames: list[tuple[_Segment, Frame]] = []
        for segment in segments.values():
            if segment.record.name in self.damaged:
                continue
            within = [
                i
                for i, f in enumerate(segment.index.frames)
                if (start is None or order.lower(f) < start) and query.in_window(f)
            ]
            if within and not masks.empty:
                loaded = self._filters(segment)
                within = [i for i in within if loaded and query.may_hold(loaded[i], masks)]
            frames += [(segment, segment.index.frames[i]) for i in within]
        return hidden, frames

    def _filters(self, segment: _Segment) -> tuple[Frame, ...]:
        """The segment's frames with their filters, read from the manifest for this one
        read (its index is one blob); () when it cannot be read back."""
        blob = self._store.frame_index(segment.record.id)
        try:
            loaded = SegmentIndex.decode(blob or b"")
        except SegmentDamaged as exc:
            self._mark(segment.record.name, str(exc))
            return ()
        if len(loaded.frames) != len(segment.index.frames):
            self._mark(segment.record.name, "its recorded index changed")
            return ()
        return loaded.frames

    def _rows(
        self,
        segment: _Segment,
        frame: Frame,
        query: ArchiveQuery,
        hidden: frozenset[tuple[int, str]],
        test: Prefilter,
    ) -> Iterator[dict[str, Any]]:
        sid = segment.record.id
        try:
            lines = frame_lines(segment.path, frame)
            for line in lines:
                if not test.may_match(line):
                    continue
                row = parse_line(segment.path, frame, line)
                if query.admits(row) and (sid, row["msg_id"]) not in hidden:
                    yield row
        except SegmentDamaged as exc:
            self._mark(segment.record.name, str(exc))

    def check(self) -> dict[str, str]:
        """Read every segment back whole; return (and remember) the damaged ones."""
        segments, _ = self._current()
        for segment in segments.values():
            r = segment.record
            try:
                verify(segment.path, segment.index, r.rows, r.msg_ids_sha256)
            except SegmentDamaged as exc:
                self._mark(r.name, str(exc))
            else:
                self.damaged.pop(r.name, None)
        return dict(self.damaged)


def _emit(
    best: list[tuple[Key, int, dict[str, Any]]],
    out: list[dict[str, Any]],
    bound: Key | None,
    want: int,
) -> None:
    """Move rows no unread frame can pass from the heap to `out`, best first."""
    while best and len(out) < want:
        key = tuple(-k for k in best[0][0])
        if bound is not None and key <= bound:
            return
        out.append(heapq.heappop(best)[2])
