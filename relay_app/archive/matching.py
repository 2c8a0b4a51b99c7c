"""What an archived row must satisfy: a query's filters and its search, in Python.

The hot store answers these in SQL and its full-text index; the archive holds neither,
so a frame its index could not rule out is read and each row tested here. A search term
means what it means to FTS5: its words cut and folded as the index's tokenizer does
(`relay_app.archive.tokens`), found as a phrase, the last one as a prefix when the term
is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay_app.archive.bloom import Mask, field_token
from relay_app.archive.prefilter import Prefilter
from relay_app.archive.segment import INDEXED_FIELDS, Frame
from relay_app.archive.tokens import fts_words
from relay_app.store_search import SearchQuery, Term, content_text


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """Which archived rows a read wants: equal fields, a report-time window, a search."""

    equal: tuple[tuple[str, tuple[str, ...]], ...] = ()
    since: float | None = None
    until: float | None = None
    search: SearchQuery | None = None

    def admits(self, row: dict[str, Any]) -> bool:
        """Whether the row passes every filter and the search."""
        if any(row.get(name) not in values for name, values in self.equal):
            return False
        ts = row["timestamp"]
        if (self.since is not None and ts < self.since) or (
            self.until is not None and ts >= self.until
        ):
            return False
        if self.search is None:
            return True
        return searched(self.search, fts_words(content_text(row["content"])))

    def prefilter(self) -> Prefilter:
        """The byte tests a row's line must pass before it is parsed."""
        return Prefilter.of(self.equal, self.search)

    def in_window(self, frame: Frame) -> bool:
        """False when the frame's report times all lie outside the query's window."""
        if self.since is not None and frame.max_ts < self.since:
            return False
        return self.until is None or frame.min_ts < self.until

    def may_hold(self, frame: Frame, masks: QueryMasks) -> bool:
        """False when the frame's filter rules out every row it holds (a frame whose
        filter is not loaded may hold any)."""
        bloom = frame.bloom
        if bloom is None:
            return True
        if not all(any(bloom.may_hold(m) for m in alts) for alts in masks.equal):
            return False
        return all(any(bloom.may_hold(m) for m in alts) for alts in masks.groups)

    def masks(self) -> QueryMasks:
        """The filter tests of this query, made once per read."""
        # A frame's filter holds only the INDEXED_FIELDS (not msg_id): any other filter is
        # left to `admits`, row by row, lest a frame holding its value be skipped.
        equal = [[Mask([field_token(n, v)]) for v in values]
                 for n, values in self.equal if n in INDEXED_FIELDS]  # fmt: skip
        groups: list[list[Mask]] = []
        for group in self.search.groups if self.search else ():
            alternatives = [Mask(_whole_runs(term)) for term in group]
            groups.append(alternatives)
        return QueryMasks(equal, groups)


@dataclass(frozen=True, slots=True)
class QueryMasks:
    """Per equality filter and per search group, the alternatives a frame must maybe hold."""

    equal: list[list[Mask]]
    groups: list[list[Mask]]

    @property
    def empty(self) -> bool:
        """True when no frame's filter can rule anything out for the query."""
        return not self.equal and not self.groups


def _whole_runs(term: Term) -> list[str]:
    """The runs a row matching `term` holds whole (a prefix run is only begun)."""
    runs = term_runs(term)
    return runs[:-1] if term.prefix else runs


def term_runs(term: Term) -> list[str]:
    """A term's words as the index cuts them (FTS5 cuts the quoted phrase as one text)."""
    return fts_words(" ".join(term.words))


def searched(search: SearchQuery, doc: list[str]) -> bool:
    """Whether a row whose text cuts into `doc` matches the search."""
    if any(_has(term, doc) for term in search.excluded):
        return False
    return all(any(_has(term, doc) for term in group) for group in search.groups)


def _has(term: Term, doc: list[str]) -> bool:
    runs = term_runs(term)
    if not runs:
        return False  # a term with no words matches nothing, as on the hot store
    last = len(runs) - 1
    return any(
        all(_run_at(doc[start + j], runs[j], term.prefix and j == last) for j in range(last + 1))
        for start in range(len(doc) - last)
    )


def _run_at(word: str, run: str, prefix: bool) -> bool:
    return word.startswith(run) if prefix else word == run
