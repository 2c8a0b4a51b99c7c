"""The data directory's lock: one SQLite relay (or one restore) at a time per data dir.

A relay on SQLite holds an exclusive `flock` on `<data_dir>/relay.lock` for its whole
life; `commander-relay restore` takes the same lock, so it refuses while a relay runs
there and no relay can start halfway through a restore. The kernel drops the lock when
the process ends, however it ends: no stale lock after a kill -9. The file keeps the pid
of the last holder, for the message of the one refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "relay.lock"


class DataDirBusy(OSError):
    """Another process holds the data directory's lock (a relay, or a restore).

    An OSError, so `commander-relay serve` reports it as it reports a port in use.
    """


def lock_path(data_dir: str | Path) -> Path:
    """Where a data directory's lock lives."""
    return Path(data_dir) / LOCK_NAME


def acquire(data_dir: str | Path, holder: str = "relay") -> int:
    """Take the lock without waiting; return its descriptor (for `release`) or raise
    DataDirBusy naming the pid that holds it."""
    path = lock_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        # Made by another user (root's restore, say): flock needs no write access.
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder_text = _holder(fd)
        os.close(fd)
        raise DataDirBusy(
            f"another process ({holder_text}) holds {path}: a relay or a restore is"
            " running on this data directory"
        ) from exc
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):  # only a hint for the one refused
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder} pid {os.getpid()}\n".encode())
    return fd


def release(fd: int) -> None:
    """Drop the lock (closing the descriptor releases it)."""
    os.close(fd)


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"
