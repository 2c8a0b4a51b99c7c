"""Archive segments: immutable zstd JSON Lines files in independent frames, and their index.

A segment holds messages moved out of the hot store, one JSON object a line (the wire
fields, `id`, `received_at` and `status`, content as JSON), in frames of up to
FRAME_ROWS lines. Each frame is compressed on its own with a checksum, so one message
costs one frame read, a damaged frame is detected, and `zstdcat seg.jsonl.zst | jq` or
DuckDB read a segment as one stream. Its `SegmentIndex` (kept in the store's manifest)
says where each frame lies and what it holds, so a read skips frames that cannot match.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import zstandard

from relay_app.archive.bloom import Bloom, field_token
from relay_app.archive.tokens import fts_words
from relay_app.store_archive import Candidate
from runtime.core.durable import fsync_dir

SUFFIX = ".jsonl.zst"
TMP_SUFFIX = ".tmp"
FRAME_ROWS = 1000
FRAME_BYTES = 1024 * 1024  # of JSON lines: a frame is cut at the row that passes it
LEVEL = 9  # measured in docs/ARCHIVE.md: near level 19's size at 60x its speed
# Fields whose values a frame's filter holds: the equality filters of the inbox and API.
INDEXED_FIELDS = ("agent_id", "node_id", "role", "priority", "task_id", "sender", "recipient")


class SegmentDamaged(Exception):
    """A segment file does not hold what its manifest entry says (truncated, altered, gone)."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One independently compressed frame: where it lies and what its rows span."""

    offset: int
    length: int
    rows: int
    min_ts: float
    max_ts: float
    min_id: int
    max_id: int
    bloom: Bloom | None = None  # None: not loaded (a reader keeps only the ranges)


@dataclass(frozen=True, slots=True)
class SegmentIndex:
    """The frames of one segment, in file order."""

    frames: tuple[Frame, ...]

    def encode(self) -> bytes:
        """A compact form for the manifest: the frames' numbers as JSON, then their filters."""
        filters = [f.bloom for f in self.frames if f.bloom is not None]
        assert len(filters) == len(self.frames), "an index is written with every filter"
        head = [[f.offset, f.length, f.rows, f.min_ts, f.max_ts, f.min_id, f.max_id, b.size]
                for f, b in zip(self.frames, filters, strict=True)]  # fmt: skip
        body = orjson.dumps(head)
        blooms = b"".join(b.to_bytes() for b in filters)
        raw = len(body).to_bytes(4, "little") + body + blooms
        return zstandard.ZstdCompressor(level=3).compress(raw)

    @staticmethod
    def decode(blob: bytes, *, filters: bool = True) -> SegmentIndex:
        """The index `encode` wrote (without `filters`, only the frames' ranges);
        SegmentDamaged when it is not one."""
        try:
            raw = zstandard.ZstdDecompressor().decompress(blob)
            size = int.from_bytes(raw[:4], "little")
            head = orjson.loads(raw[4 : 4 + size])
            at, frames = 4 + size, []
            for offset, length, rows, min_ts, max_ts, min_id, max_id, bits in head:
                bloom = Bloom.from_bytes(raw[at : at + bits // 8]) if filters else None
                at += bits // 8
                frames.append(Frame(offset, length, rows, min_ts, max_ts, min_id, max_id, bloom))
        except (zstandard.ZstdError, orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise SegmentDamaged(f"unreadable segment index: {exc}") from exc
        return SegmentIndex(tuple(frames))


@dataclass(frozen=True, slots=True)
class WrittenSegment:
    """A segment on disk, fsynced and renamed into place, and what it holds."""

    name: str
    rows: int
    size: int
    msg_ids_sha256: str
    index: SegmentIndex
    # (msg_id, frame number, node_id, agent_id) of every row, in file order
    placed: tuple[tuple[str, int, str, str, float], ...] = field(repr=False)


def ids_digest(msg_ids: Iterable[str]) -> str:
    """sha256 of the sorted msg_ids, one a line: what a segment must hold, order aside."""
    digest = hashlib.sha256()
    for msg_id in sorted(msg_ids):
        digest.update(msg_id.encode() + b"\n")
    return digest.hexdigest()


def row_tokens(row: dict[str, Any], text: str) -> set[str]:
    """What a frame's filter holds of one row: the words of its text and its field values."""
    tokens = {field_token(name, str(row[name])) for name in INDEXED_FIELDS if row[name] is not None}
    tokens.update(fts_words(text))
    return tokens


def write_segment(
    directory: Path,
    name: str,
    rows: Iterable[Candidate],
    on_frame: Callable[[str], None] = lambda _step: None,
) -> WrittenSegment:
    """Write `rows` (their messages, with `id`) as segment `name`.

    Written to a temporary file, fsynced, renamed into place and the directory fsynced:
    a crash leaves either no segment or a whole one (and perhaps a `.tmp` to delete).
    """
    tmp = directory / (name + TMP_SUFFIX)
    frames: list[Frame] = []
    placed: list[tuple[str, int, str, str, float]] = []
    compressor = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True)
    with tmp.open("wb") as out:
        for chunk, lines in _chunks(rows):
            data = compressor.compress(b"".join(lines))
            frames.append(_frame(out.tell(), len(data), chunk))
            number = len(frames) - 1
            placed.extend((m["msg_id"], number, m["node_id"], m["agent_id"], m["timestamp"])
                          for m in (c.message for c in chunk))  # fmt: skip
            out.write(data)
            on_frame("frame")
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    final = directory / (name + SUFFIX)
    os.replace(tmp, final)
    fsync_dir(directory)
    digest = ids_digest(m for m, *_ in placed)
    return WrittenSegment(
        name, len(placed), size, digest, SegmentIndex(tuple(frames)), tuple(placed)
    )


def _chunks(rows: Iterable[Candidate]) -> Iterator[tuple[list[Candidate], list[bytes]]]:
    """Frames' worth of rows and their lines: FRAME_ROWS, or fewer once FRAME_BYTES are
    passed, so reading one message never means inflating a frame of large ones."""
    chunk: list[Candidate] = []
    lines: list[bytes] = []
    size = 0
    for row in rows:
        line = orjson.dumps(row.message) + b"\n"
        chunk.append(row)
        lines.append(line)
        size += len(line)
        if len(chunk) == FRAME_ROWS or size >= FRAME_BYTES:
            yield chunk, lines
            chunk, lines, size = [], [], 0
    if chunk:
        yield chunk, lines


def _frame(offset: int, length: int, chunk: list[Candidate]) -> Frame:
    stamps = [c.message["timestamp"] for c in chunk]
    ids = [c.message["id"] for c in chunk]
    tokens: set[str] = set()
    for c in chunk:
        tokens |= row_tokens(c.message, c.text)
    return Frame(offset, length, len(chunk), min(stamps), max(stamps), min(ids), max(ids),
                 Bloom.of(tokens))  # fmt: skip


def segment_path(directory: Path, name: str) -> Path:
    """Where segment `name` lives."""
    return directory / (name + SUFFIX)


def read_frame(path: Path, frame: Frame) -> list[dict[str, Any]]:
    """The rows of one frame, parsed; SegmentDamaged when the bytes are not that frame."""
    return [parse_line(path, frame, line) for line in frame_lines(path, frame)]


def frame_lines(path: Path, frame: Frame) -> list[bytes]:
    """The lines of one frame, unparsed; SegmentDamaged when the bytes are not that frame."""
    try:
        with path.open("rb") as f:
            f.seek(frame.offset)
            data = f.read(frame.length)
        if len(data) != frame.length:
            raise SegmentDamaged(f"{path.name}: truncated at frame offset {frame.offset}")
        lines = zstandard.ZstdDecompressor().decompress(data).splitlines()
    except (OSError, zstandard.ZstdError) as exc:
        raise SegmentDamaged(f"{path.name}: frame at {frame.offset}: {exc}") from exc
    if len(lines) != frame.rows:
        raise SegmentDamaged(f"{path.name}: frame at {frame.offset} holds {len(lines)} rows")
    return lines


def parse_line(path: Path, frame: Frame, line: bytes) -> dict[str, Any]:
    """One line of a frame, parsed; SegmentDamaged when it is not JSON."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise SegmentDamaged(f"{path.name}: frame at {frame.offset}: {exc}") from exc
    if not isinstance(row, dict):
        raise SegmentDamaged(f"{path.name}: frame at {frame.offset}: a line is not an object")
    return row


def verify(path: Path, index: SegmentIndex, rows: int, msg_ids_sha256: str) -> None:
    """Read every frame back; SegmentDamaged unless it holds exactly the recorded msg_ids."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SegmentDamaged(f"{path.name}: {exc}") from exc
    end = index.frames[-1].offset + index.frames[-1].length if index.frames else 0
    if size != end:
        raise SegmentDamaged(f"{path.name}: {size} bytes, the index ends at {end}")
    ids = [row["msg_id"] for frame in index.frames for row in read_frame(path, frame)]
    if len(ids) != rows or ids_digest(ids) != msg_ids_sha256:
        raise SegmentDamaged(f"{path.name}: holds other messages than its manifest entry")
