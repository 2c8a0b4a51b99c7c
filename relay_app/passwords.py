"""Operator password hashes for the /messages page: scrypt, stored as one string.

Format: `scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>`, made by
`commander-relay hash-password` and put in relay.operator_password_file (or, the older
way, relay.operator_password_hash in relay.yaml).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from runtime.core.config import ClusterConfig
from runtime.core.errors import ConfigError, ConfigProblem

# scrypt's "interactive" cost (16 MiB, tens of ms): slow for guessing, fine for logins.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
# Bounds on parameters read from config, so a bad hash cannot make a login eat the host.
MAX_MEMORY = 64 * 1024 * 1024
MAX_P = 16
MAX_KEY_BYTES = 64


def hash_password(password: str) -> str:
    """Hash a password with a fresh random salt."""
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def verify_password(password: str, encoded: str) -> bool:
    """Tell whether `password` matches `encoded`; False for a malformed hash too."""
    parsed = _parse(encoded)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(key)), key)


def is_password_hash(encoded: str) -> bool:
    """Whether `encoded` is a hash `verify_password` can use (format and sane cost)."""
    return _parse(encoded) is not None


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    sane = n > 1 and n & (n - 1) == 0 and r > 0 and 128 * r * n <= MAX_MEMORY and 0 < p <= MAX_P
    if not sane or not 0 < len(key) <= MAX_KEY_BYTES:
        return None
    return n, r, p, salt, key


def operator_password_hash(config: ClusterConfig) -> str | None:
    """The operator's hash: from relay.operator_password_file (read now; a relative path is
    relative to relay.yaml's directory) or relay.operator_password_hash; ConfigError if
    both are set, or the file is missing, unreadable or holds no hash."""
    settings = config.relay
    name = settings.operator_password_file
    if not name:
        return settings.operator_password_hash
    yaml_file = str(Path(config.config_dir or ".") / "relay.yaml")
    if settings.operator_password_hash:
        expected = "only one of operator_password_file and operator_password_hash"
        raise ConfigError([ConfigProblem(yaml_file, "relay.operator_password_file", expected)])
    path = Path(name).expanduser()
    path = path if path.is_absolute() else Path(config.config_dir or ".") / path
    try:
        encoded = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        expected = "a readable file holding the hash from `commander-relay hash-password`"
        problem = ConfigProblem(str(path), "relay.operator_password_file", expected, str(exc))
        raise ConfigError([problem]) from exc
    if not is_password_hash(encoded):
        expected = "one hash from `commander-relay hash-password` (scrypt$...)"
        got = f"{len(encoded)} characters that are not such a hash"
        raise ConfigError([ConfigProblem(str(path), "(file)", expected, got)])
    return encoded


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int = KEY_BYTES) -> bytes:
    # OpenSSL's default maxmem (32 MiB) is below what MAX_MEMORY allows: give it room.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=size, maxmem=2 * MAX_MEMORY
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
