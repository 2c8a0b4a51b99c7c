"""Bearer tokens at rest: new tokens, their sha256, private files, `id: sha256hex` tables.

Shared by the relay (node tokens) and the node (agent tokens): a daemon keeps only
each token's sha256, in a YAML mapping `id: 64 lowercase hex digits`; the token itself
lives in a file readable by its owner only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

import yaml

from runtime.core.config_checks import SHA256_RE
from runtime.core.errors import ConfigError, ConfigProblem
from runtime.core.ids import is_id

logger = logging.getLogger(__name__)

# 32 random bytes: no guessing, and hashing it once (no salt, no stretching) is enough.
TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random token (URL-safe text)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    """The hex sha256 a daemon stores for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, expected: str | None, dummy: str) -> bool:
    """Whether `token` hashes to `expected`, in the same time whether `expected` is known.

    Header values arrive as latin-1 text in WSGI: the bytes the client sent are hashed.
    """
    actual = hashlib.sha256(token.encode("latin-1", "replace")).hexdigest()
    matches = hmac.compare_digest(actual, expected or dummy)
    return matches and expected is not None


def write_private(path: Path, text: str, mode: int = 0o600, group: int = -1) -> None:
    """Replace `path` atomically with `text`, with `mode` and `group` from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a leftover of a crash, or a link someone planted
    # O_EXCL: never through a link or into a file another user opened first.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with contextlib.suppress(PermissionError):  # not root: the file stays the caller's
            os.fchown(fd, -1, group)
        os.fchmod(fd, mode)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_for_service(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by a daemon's service user but not by others.

    The command runs as root, the daemon as its service user: a new file is mode 0640
    with its directory's group (`install -d -g commander` in the README), and a file
    replaced keeps the mode and group the operator gave it, less any access for others
    (a file made with `touch` is 0644: the secret would be world-readable).
    """
    try:
        before = path.stat()
        mode, group = before.st_mode & 0o770, before.st_gid
    except FileNotFoundError:
        mode, group = 0o640, path.parent.stat().st_gid if path.parent.exists() else -1
    write_private(path, text, mode, group)


def read_sha256_table(path: Path, key: str = "id") -> dict[str, str]:
    """Parse a `key: sha256hex` YAML mapping; raise ConfigError naming every bad entry."""
    file = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = ConfigProblem(file, "(file)", "a readable YAML mapping", str(exc))
        raise ConfigError([problem]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, "(top level)", f"a mapping {key}: sha256")])
    problems = [
        ConfigProblem(file, str(name), f"{key}: 64 lowercase hex digits")
        for name, value in data.items()
        if not is_id(name) or not (isinstance(value, str) and SHA256_RE.match(value))
    ]
    if problems:
        raise ConfigError(problems)
    return dict(data)


class WatchedTable:
    """A `key: sha256hex` file re-read when it changes; while broken, the last good table."""

    def __init__(self, path: Path | None, key: str) -> None:
        """Read it now: a broken file is a ConfigError, a missing one an empty table."""
        self.path = path
        self.key = key
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._table: Mapping[str, str] = {}
        self._reload(strict=True)

    def current(self) -> Mapping[str, str]:
        """The table the file holds now (one `stat` per call)."""
        self._reload(strict=False)
        return self._table

    def _reload(self, *, strict: bool) -> None:
        if self.path is None:
            return
        try:
            info = os.stat(self.path)
            # The inode and size too: a token rotated by replacing the file gives one of
            # the same size, maybe within one mtime tick, and the old token must stop.
            stamp: tuple[int, int, int] | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        with self._lock:
            try:
                self._table = read_sha256_table(self.path, self.key) if stamp else {}
            except ConfigError:
                if strict:
                    raise
                logger.warning("%s is broken; keeping the tokens read before", self.path)
                return
            self._stamp = stamp


def write_sha256_table(path: Path, table: dict[str, str]) -> None:
    """Write an `id: sha256hex` table (sorted) for a daemon's service user to read."""
    write_for_service(path, yaml.safe_dump(table, default_flow_style=False, sort_keys=True))


def agent_hashes_path(config_dir: str | Path) -> Path:
    """Where a node reads its agents' token hashes by default."""
    return Path(config_dir) / "secrets" / "agent-token-hashes.yaml"
