"""Bloom filters over a frame's words and field values: which frames a read may skip.

A filter is a Python int of `size` bits (a power of two) with K bits set per token, so
testing a frame for every token of a query is one AND of two ints. A token it answers
"no" for is surely absent; "maybe" costs one frame decompressed and read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

K = 4
BITS_PER_TOKEN = 10  # with K = 4, about 1 false "maybe" in 80 tokens absent
MIN_BITS = 64


def field_token(name: str, value: str) -> str:
    """The token of one field's value (a NUL cannot occur in a word, so none collides)."""
    return f"{name}\x00{value}"


def _positions(token: str, size: int) -> list[int]:
    digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
    h1 = int.from_bytes(digest[:8], "little")
    h2 = int.from_bytes(digest[8:], "little") | 1
    return [(h1 + i * h2) & (size - 1) for i in range(K)]


@dataclass(frozen=True, slots=True)
class Bloom:
    """A set of tokens, lossy one way: `may_hold` is never wrong when it says False."""

    bits: int
    size: int

    @staticmethod
    def of(tokens: Iterable[str]) -> Bloom:
        """A filter sized for `tokens` (a set, or any iterable of distinct tokens)."""
        unique = set(tokens)
        size = MIN_BITS
        while size < len(unique) * BITS_PER_TOKEN:
            size *= 2
        return Bloom(mask(unique, size), size)

    def may_hold(self, query: Mask) -> bool:
        """False only when some token of the query is surely not in the set."""
        bits = query.bits(self.size)
        return self.bits & bits == bits

    def to_bytes(self) -> bytes:
        """The bits, little-endian, `size` / 8 bytes."""
        return self.bits.to_bytes(self.size // 8, "little")

    @staticmethod
    def from_bytes(data: bytes) -> Bloom:
        """The filter `to_bytes` wrote."""
        return Bloom(int.from_bytes(data, "little"), len(data) * 8)


def mask(tokens: Iterable[str], size: int) -> int:
    """The bits every token of `tokens` sets in a filter of `size` bits."""
    bits = 0
    for token in tokens:
        for p in _positions(token, size):
            bits |= 1 << p
    return bits


class Mask:
    """The tokens a read needs, with their bits per filter size computed once."""

    def __init__(self, tokens: Iterable[str]) -> None:
        """Remember the tokens; bits are made per filter size on first use."""
        self.tokens = tuple(sorted(set(tokens)))
        self._bits: dict[int, int] = {}

    def bits(self, size: int) -> int:
        """The bits of every token in a filter of `size` bits."""
        found = self._bits.get(size)
        if found is None:
            found = self._bits[size] = mask(self.tokens, size)
        return found
