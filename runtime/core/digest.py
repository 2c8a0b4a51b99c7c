"""Digests of msg_id sets: how a node and the relay compare what they hold, cheaply.

Messages are grouped in buckets of BUCKET_SECONDS of report time. A bucket's digest is
its count and the XOR of a 64-bit hash of each msg_id: order does not matter, adding and
taking out an id are the same cheap step, and two sides agree on a bucket exactly when
they hold the same ids (but for a 2**-64 chance). The hash is the first 8 bytes of the
id's MD5, which PostgreSQL computes in SQL as well; nothing here needs it to be secret.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

BUCKET_SECONDS = 3600
MASK = (1 << 64) - 1


def id_hash(msg_id: str) -> int:
    """The id's 64-bit hash: the first 8 bytes of its MD5, big-endian."""
    return int.from_bytes(hashlib.md5(msg_id.encode(), usedforsecurity=False).digest()[:8], "big")


def bucket_of(timestamp: float) -> int:
    """The bucket a report time falls in."""
    return math.floor(timestamp / BUCKET_SECONDS)


def bucket_start(bucket: int) -> float:
    """The first report time of a bucket."""
    return float(bucket * BUCKET_SECONDS)


@dataclass(slots=True)
class Digest:
    """One bucket's count and XOR of hashes."""

    count: int = 0
    xor: int = 0

    def add(self, msg_id: str) -> None:
        """Count one id in."""
        self.count += 1
        self.xor ^= id_hash(msg_id)

    def remove(self, msg_id: str) -> None:
        """Count one id out (it must have been in)."""
        self.count -= 1
        self.xor ^= id_hash(msg_id)

    def key(self) -> tuple[int, int]:
        """What two sides compare."""
        return self.count, self.xor


Digests = dict[int, Digest]


def digests_of(rows: Iterable[tuple[float, str]]) -> Digests:
    """The digests of (timestamp, msg_id) rows, by bucket."""
    found: Digests = {}
    for timestamp, msg_id in rows:
        found.setdefault(bucket_of(timestamp), Digest()).add(msg_id)
    return found


def encode(digests: Mapping[int, Digest]) -> list[list[Any]]:
    """Wire form, in bucket order: [[bucket, count, "16 hex digits"], ...]."""
    return [[b, d.count, f"{d.xor & MASK:016x}"] for b, d in sorted(digests.items())]


def decode(items: Any) -> Digests:
    """Read the wire form back; raises ValueError on anything else."""
    if not isinstance(items, list):
        raise ValueError("digests: expected a list")
    found: Digests = {}
    for item in items:
        if not (isinstance(item, list) and len(item) == 3):
            raise ValueError("digests: each item is [bucket, count, hash]")
        bucket, count, xor = item
        if not (_integer(bucket) and _integer(count) and isinstance(xor, str) and len(xor) == 16):
            raise ValueError("digests: each item is [bucket, count, hash]")
        found[bucket] = Digest(count, int(xor, 16))
    return found


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
