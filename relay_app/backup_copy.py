"""Copying a relay's immutable files: archive segments and uploaded files, by name and size.

Segments and uploads never change once written: a copy adds those the target lacks (or
holds at another size), each to a temporary name, fsynced, then renamed, and fsyncs each
directory it touched. Temporaries (`.tmp`, `.part`) and uploads still arriving
(`files/.incoming/`) are never copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from relay_app.archive.mover import ARCHIVE_DIR
from relay_app.archive.segment import SUFFIX as SEGMENT_SUFFIX
from runtime.core.durable import fsync_dir

FILES_DIR = "files"
INCOMING_DIR = ".incoming"  # relay_app.files: uploads still arriving
TEMP_SUFFIXES = (".tmp", ".part")
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Copied:
    """Immutable files one run copied."""

    files: int = 0
    bytes: int = 0

    def __add__(self, other: Copied) -> Copied:
        """Both runs' figures."""
        return Copied(self.files + other.files, self.bytes + other.bytes)


def copy_immutable(source_root: Path, target_root: Path) -> tuple[Copied, Copied]:
    """Copy the segments and the uploaded files `target_root` lacks: (segments, files)."""
    segments = copy_new(source_root, target_root, _segments(source_root / ARCHIVE_DIR))
    files = copy_new(source_root, target_root, _uploads(source_root / FILES_DIR))
    return segments, files


def copy_new(source_root: Path, target_root: Path, paths: Iterator[Path]) -> Copied:
    """Copy each of `paths` (under source_root) whose twin under target_root is missing or
    of another size."""
    copied = Copied()
    touched: set[Path] = set()
    for path in paths:
        target = target_root / path.relative_to(source_root)
        try:
            size = path.stat().st_size
            if target.is_file() and target.stat().st_size == size:
                continue
            _copy_durably(path, target)
        except FileNotFoundError:
            continue  # removed meanwhile (the archiver's sweep of an unrecorded segment)
        touched.add(target.parent)
        copied += Copied(1, size)
    for directory in touched:
        fsync_dir(directory)
    return copied


def _copy_durably(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with source.open("rb") as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, target)


def _segments(directory: Path) -> Iterator[Path]:
    """The archive's finished segments (never its temporaries or its lock)."""
    if directory.is_dir():
        yield from (p for p in directory.glob("*" + SEGMENT_SUFFIX) if p.is_file())


def _uploads(directory: Path) -> Iterator[Path]:
    """Stored uploads: not those still arriving, nor any temporary."""
    if not directory.is_dir():
        return
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if relative.parts[0] == INCOMING_DIR or path.name.endswith(TEMP_SUFFIXES):
            continue
        if path.is_file():
            yield path
