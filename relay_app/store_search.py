"""Full-text search as the store sees it: a parsed query, the indexed text, index chunks.

`relay_app.inbox.search` turns a search box into a `SearchQuery`; a store runs it against
its own index (SQLite: FTS5 through `match()`; another engine translates `groups` and
`excluded` into its own syntax). Content is gzip in the store, so no engine can index it
by itself: the inbox's indexer reads an `IndexChunk`, takes each message's text with
`content_text` outside the writer, and submits `IndexEntries`.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from runtime.core.envelope import decode_content

logger = logging.getLogger(__name__)

# How much of one message's text the index sees; longer content is still shown in full.
MAX_INDEXED_CHARS = 64 * 1024
# A word as SQLite's unicode61 tokenizer cuts it: a run of letters and digits.
_RUN = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class Term:
    """One search term: its words (a phrase when several), prefix match, or excluded."""

    words: tuple[str, ...]
    prefix: bool = False
    negated: bool = False

    def fts(self) -> str:
        """The term as an FTS5 string: quoted, so it is always a plain phrase."""
        return '"' + " ".join(self.words) + '"' + ("*" if self.prefix else "")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search box: groups of alternatives (OR inside, AND between) and exclusions.

    With no groups it lists every indexed message without the exclusions. `notes` say
    what of the typed text was cut or searched differently, for the page.
    """

    groups: tuple[tuple[Term, ...], ...]
    excluded: tuple[Term, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def match(self) -> str:
        """The FTS5 MATCH expression; for exclusions alone, that of the rows to leave out."""
        if not self.groups:
            return " OR ".join(t.fts() for t in self.excluded)
        parts = []
        for group in self.groups:
            alternatives = " OR ".join(t.fts() for t in group)
            parts.append(f"({alternatives})" if len(group) > 1 else alternatives)
        expression = " AND ".join(parts)
        for term in self.excluded:
            expression += f" NOT {term.fts()}"
        return expression

    def terms(self) -> list[Term]:
        """The positive terms, for highlighting."""
        return [term for group in self.groups for term in group]


def content_text(content: Any, limit: int = MAX_INDEXED_CHARS) -> str:
    """The searchable text of a message's content: its string, number and bool values."""
    parts: list[str] = []
    size = 0
    stack = [content]
    while stack and size < limit:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(reversed(list(value.values())))
        elif isinstance(value, list):
            stack.extend(reversed(value))
        elif isinstance(value, str):
            parts.append(value)
            size += len(value) + 1
        elif value is not None:
            parts.append(str(value).lower() if isinstance(value, bool) else str(value))
            size += len(parts[-1]) + 1
    return "\n".join(parts)[:limit]


@dataclass(frozen=True, slots=True)
class IndexChunk:
    """The next messages the index lacks: (row id, stored gzip content) each, oldest first.

    `after_id` is where the index stopped when the chunk was read; the chunk ends at the
    id of its last message.
    """

    after_id: int
    contents: tuple[tuple[int, bytes], ...]

    @property
    def up_to_id(self) -> int:
        """The id of the chunk's last message."""
        return self.contents[-1][0]

    def entries(self) -> IndexEntries:
        """Decode the chunk's content into the text the index holds (the slow part)."""
        prepared = tuple((row_id, searchable(blob)) for row_id, blob in self.contents)
        return IndexEntries(self.after_id, self.up_to_id, prepared)


def searchable(blob: bytes) -> str:
    """A stored content's searchable text; "" when it cannot be decoded."""
    try:
        return content_text(decode_content(blob))
    except Exception:  # an undecodable blob is indexed as empty, not retried forever
        logger.warning("message content cannot be decoded; indexed as empty")
        return ""


@dataclass(frozen=True, slots=True)
class IndexEntries:
    """Add prepared full-text entries (row id, text) for rows after `after_id` up to `up_to_id`.

    Prepared outside the writer (decoding content is the slow part); applied only if the
    index still stops at `after_id`, so a repeated or overtaken op changes nothing.
    """

    after_id: int
    up_to_id: int
    entries: tuple[tuple[int, str], ...]


def fold(text: str) -> str:
    """Text folded as FTS5's unicode61 tokenizer folds it: lower case, no diacritics."""
    text = text.replace("\x00", " ").lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded letter-and-digit runs of a text: what an index holds or looks up."""
    return _RUN.findall(fold(text))
