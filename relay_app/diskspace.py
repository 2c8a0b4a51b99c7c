"""The free-space floor of the data directory: below it, writes get 507 before they start.

A relay has one `SpaceGate`; its node API, its file door and its inbox's actions all ask
that one, so they refuse at the same floor and one probe (or test) governs them all.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from relay_app.errors import StorageFull
from runtime.core.config import RelaySettings

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

    @classmethod
    def of(cls, settings: RelaySettings, free_bytes: FreeBytes | None = None) -> SpaceGate:
        """The gate of a relay: its data directory (or `free_bytes`) against min_free_bytes."""
        return cls(free_bytes or free_bytes_of(settings.data_dir), settings.min_free_bytes)

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
