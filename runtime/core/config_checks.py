"""What each config key may hold: the value checks, and the optional keys of each file.

`runtime.core.config` reads the files with these; a key's default is its dataclass
field's, never repeated here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from runtime.core.envelope import MAX_BATCH_BYTES
from runtime.core.ids import ID_SHAPE

# `\Z`, not `$`: `$` also matches before a trailing newline.
SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")
# What useradd accepts (at most 32 characters, no leading '-'), minus all-digit names,
# which tools would take for uids.
UNIX_USER_RE = re.compile(r"\A(?![0-9]+\Z)[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}[A-Za-z0-9_.$-]?\Z")
ID_EXPECTED = f"an id: {ID_SHAPE}"
UNIX_USER_EXPECTED = "a Unix user name: letters, digits, '_.-', at most 32, not all digits"
# key -> (its check, what is expected when the check fails)
Keys = dict[str, tuple[Callable[[Any], bool], str]]


def is_int(v: Any) -> bool:
    """An int that is not a bool (YAML `true` is no number)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos_int(v: Any) -> bool:
    return is_int(v) and v > 0


def _is_pos_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def is_str(v: Any) -> bool:
    """A non-empty string."""
    return isinstance(v, str) and bool(v)


def _is_unix_user(v: Any) -> bool:
    return isinstance(v, str) and bool(UNIX_USER_RE.match(v))


def is_bool(v: Any) -> bool:
    """true or false."""
    return isinstance(v, bool)


def _is_url(v: Any) -> bool:
    return isinstance(v, str) and v.startswith(("http://", "https://"))


def is_store(v: Any) -> bool:
    """`sqlite` (the embedded default) or a PostgreSQL connection URL."""
    return v == "sqlite" or (isinstance(v, str) and v.startswith(("postgresql://", "postgres://")))


def _is_sha(v: Any) -> bool:
    return isinstance(v, str) and bool(SHA256_RE.match(v))


def _is_address_list(v: Any) -> bool:
    if not isinstance(v, list):
        return False
    try:
        for item in v:
            ipaddress.ip_address(item)
    except (TypeError, ValueError):
        return False
    return True


def is_port(v: Any) -> bool:
    """A TCP port, 1-65535."""
    return is_int(v) and 0 < v < 65536


# The optional keys of each file, read through `config._Reader.values`; their defaults are
# the dataclass fields' own (runtime.core.config), so they are written down once.
CACHE_KEYS: Keys = {
    "max_bytes": (_is_pos_int, "a positive integer"),
    "retention_days": (_is_pos_num, "a positive number"),
    "compression": (is_bool, "true or false"),
}
SYNC_KEYS: Keys = {
    "batch_size": (_is_pos_int, "a positive integer"),
    "interval_seconds": (_is_pos_num, "a positive number"),
    "retry_max": (_is_pos_int, "a positive integer"),
    "retry_backoff_base": (lambda v: _is_pos_num(v) and v >= 1, "a number >= 1"),
    "retry_cap_seconds": (_is_pos_num, "a positive number"),
    "timeout_seconds": (_is_pos_num, "a positive number"),
}
AGENT_OPTIONAL_KEYS: Keys = {
    "enabled": (is_bool, "true or false"),
    "context_tokens": (_is_pos_int, "a positive integer"),
    "unix_user": (_is_unix_user, UNIX_USER_EXPECTED),
}
NODE_OPTIONAL_KEYS: Keys = {
    "role": (is_str, "a role name"),
    "sync_enabled": (is_bool, "true or false"),
    "sync_endpoint": (_is_url, "an http(s) URL"),
    "token_sha256": (_is_sha, "64 lowercase hex digits"),
}
RELAY_KEYS: Keys = {
    "data_dir": (is_str, "a directory path"),
    "host": (is_str, "a host name or address"),
    "port": (is_port, "a port 1-65535"),
    # Smaller, and a node's full batch (or its largest single message) is refused for good.
    "max_body_bytes": (
        lambda v: is_int(v) and v >= MAX_BATCH_BYTES,
        f"an integer of at least {MAX_BATCH_BYTES} (the largest batch a node sends)",
    ),
    "max_batch_messages": (_is_pos_int, "a positive integer"),
    "max_file_bytes": (_is_pos_int, "a positive integer"),
    "min_free_bytes": (lambda v: is_int(v) and v >= 0, "a non-negative integer"),
    "synchronous": (lambda v: v in ("FULL", "NORMAL", "EXTRA"), "FULL, NORMAL or EXTRA"),
    "store": (is_store, "sqlite or a postgresql:// URL"),
    "token_hashes_file": (is_str, "a file path"),
    "operator_user": (is_str, "a user name"),
    "operator_password_hash": (is_str, "a hash from `commander-relay hash-password`"),
    "execute_webhook": (_is_url, "an http(s) URL"),
    "threads": (_is_pos_int, "a positive integer"),
    "write_timeout_s": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 1 <= v <= 3600,
        "a number of seconds from 1 to 3600",
    ),
    "archive_after_days": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 36500,
        "a number of days from 0 (off) to 36500",
    ),
    "operator_password_file": (is_str, "a file path"),
    "tls_cert_file": (is_str, "a file path"),
    "tls_key_file": (is_str, "a file path"),
    "ca_file": (is_str, "a file path"),
    "trusted_proxies": (_is_address_list, "a list of IP addresses"),
    "metrics_token_sha256": (_is_sha, "64 lowercase hex digits"),
}
