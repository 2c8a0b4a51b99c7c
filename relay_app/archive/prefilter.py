"""A cheap first test of an archived line's bytes, before it is parsed and matched.

Most rows of a frame cannot match a search or a filter, and parsing each one, rebuilding
its text and cutting it into words costs about 90 µs. A line lacking the bytes a match
needs is passed over at C speed instead. The test only ever says "surely not" or "maybe":
- a filter on a field needs `"field":<value as JSON>` in the line, exactly as the
  segment writer wrote it;
- a search term needs each of its words that has no digit (a number's words can differ
  between its JSON and its text: 1e16 is "1e+16") in the lower-cased line, but only in
  an ASCII line without escapes: elsewhere "é" is searched as "e" and `\\u00e9` is é.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from relay_app.archive.tokens import fts_words
from relay_app.store_search import SearchQuery, Term


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Byte tests a line must pass: per filter any of its needles; per search group, all
    needles of one of its alternatives."""

    equal: tuple[tuple[bytes, ...], ...]
    groups: tuple[tuple[tuple[bytes, ...], ...], ...]

    @staticmethod
    def of(equal: tuple[tuple[str, tuple[str, ...]], ...], search: SearchQuery | None) -> Prefilter:
        """The tests of a query's equality filters and search."""
        needles = tuple(
            tuple(f'"{name}":'.encode() + orjson.dumps(v) for v in values) for name, values in equal
        )
        groups = (
            tuple(tuple(_term_needles(t) for t in group) for group in search.groups)
            if search
            else ()
        )
        return Prefilter(needles, groups)

    def may_match(self, line: bytes) -> bool:
        """False only when the line surely holds no match."""
        if not all(any(n in line for n in alternatives) for alternatives in self.equal):
            return False
        if not self.groups or not line.isascii() or b"\\u" in line:
            return True
        low = line.lower()
        return all(any(all(n in low for n in alt) for alt in group) for group in self.groups)


def _term_needles(term: Term) -> tuple[bytes, ...]:
    runs = [run for word in term.words for run in fts_words(word)]
    return tuple(run.encode() for run in runs if not any(c.isdigit() for c in run))
