"""The free-space floor of the data directory: below it, writes get 507 before they start."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from relay_app.errors import StorageFull

FreeBytes = Callable[[], int]


def free_bytes_of(path: str | Path) -> FreeBytes:
    """Return a probe of the bytes available to this user on the file system holding `path`."""
    target = Path(path)
    return lambda: shutil.disk_usage(target).free


class SpaceGate:
    """Refuses writes while free space is below `floor` bytes; checked on every write."""

    def __init__(self, free_bytes: FreeBytes, floor: int) -> None:
        """`free_bytes` is injectable so tests can fill and empty a disk at will."""
        self._free_bytes = free_bytes
        self.floor = floor

    def free(self) -> int:
        """Bytes free right now."""
        return self._free_bytes()

    def check(self, incoming: int = 0) -> None:
        """Raise StorageFull if writing `incoming` more bytes would cross the floor."""
        free = self._free_bytes()
        if free - incoming < self.floor:
            raise StorageFull(
                f"free space on the relay's data directory is {free} bytes; writing "
                f"{incoming} more would cross the floor of {self.floor} (relay.min_free_bytes)."
                " Nothing was stored; retry once room is made"
            )

    def ok(self) -> bool:
        """Whether free space is at or above the floor."""
        return self._free_bytes() >= self.floor
