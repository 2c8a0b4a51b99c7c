"""Listening Unix sockets: bound with their mode from the start, stale ones replaced.

A socket file's permissions decide who may connect (connect(2) needs write access),
so a socket is bound under a temporary name, given its mode, and only then renamed
into place: no moment exists where it is reachable with the umask's bits.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
from pathlib import Path

# sun_path is 108 bytes on Linux, the last one the terminating NUL.
MAX_PATH_BYTES = 107


class SocketPathError(ValueError):
    """A socket path that cannot be served: too long, not a socket, or in use."""


def check_path(path: Path) -> None:
    """Raise SocketPathError if `path` (or its temporary twin) does not fit in sun_path."""
    size = len(os.fsencode(path))
    if size > MAX_PATH_BYTES or len(os.fsencode(_temporary(path))) > MAX_PATH_BYTES:
        raise SocketPathError(
            f"socket path {path} is {size} bytes; Unix sockets allow at most {MAX_PATH_BYTES}"
            " (choose a shorter --socket-dir)"
        )


def bind_unix(path: Path, mode: int, backlog: int = 128) -> socket.socket:
    """A listening socket at `path` with `mode`; a stale socket file there is replaced."""
    check_path(path)
    _refuse_live_or_foreign(path)
    tmp = _temporary(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fsencode(tmp))
        os.chmod(tmp, mode)
        sock.listen(backlog)
        os.replace(tmp, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return sock


def unlink_socket(path: Path, inode: int | None = None) -> None:
    """Remove the socket file at `path` (only if still the inode we bound, when given)."""
    with contextlib.suppress(OSError):
        if inode is None or os.lstat(path).st_ino == inode:
            os.unlink(path)


def _temporary(path: Path) -> Path:
    # Short, so that it fits wherever the final name fits ("a.sock" is 6 bytes).
    return path.with_name(f".{secrets.token_hex(2)}")


def _refuse_live_or_foreign(path: Path) -> None:
    """A socket nobody serves is stale (a crash); one served, or any other file, is not ours."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(f"{path} exists and is not a socket; remove it or choose another")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fsencode(path))
    except OSError:
        return  # nobody listens: a stale socket left by a crash, replaced by the rename
    finally:
        probe.close()
    raise SocketPathError(f"{path} is served by another process (another node running?)")
