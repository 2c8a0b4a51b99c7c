"""Full-text search for the inbox: the search box parsed safely, and escaped highlighting.

Whatever a person types becomes an FTS5 query built only from double-quoted strings of
word characters, joined by AND, OR and NOT: no input can reach FTS5's own syntax, so no
input can make a query fail (`relay_app.store_search` holds the parsed form and the
indexed text). Highlighting splits the raw text on the search terms, escapes every
piece and only then adds `<mark>`: FTS5's `snippet()` does not escape.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace

from relay_app.store_search import SearchQuery, Term

# Bounds on what one search may cost: the live page repeats it every second. A prefix
# term expands to every indexed word it begins, so short prefixes and many of them are
# what make a search slow; a plain word costs one index lookup.
MAX_QUERY_CHARS = 200
MAX_TERMS = 8
MAX_PREFIX_TERMS = 3
MIN_PREFIX_CHARS = 3
_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")


class _Parse:
    """The state of one parse: terms so far, what was cut."""

    def __init__(self) -> None:
        self.groups: list[list[Term]] = []
        self.excluded: list[Term] = []
        self.notes: list[str] = []
        self.count = 0
        self.prefixes = 0

    def add(self, term: Term, join: bool) -> bool:
        """Add a term (within the bounds); False once no more terms fit."""
        if self.count >= MAX_TERMS:
            self.notes.append(f"Only the first {MAX_TERMS} search terms were used.")
            return False
        term = self._bounded_prefix(term)
        self.count += 1
        if term.negated:
            self.excluded.append(term)
        elif join:
            self.groups[-1].append(term)
        else:
            self.groups.append([term])
        return True

    def _bounded_prefix(self, term: Term) -> Term:
        if not term.prefix:
            return term
        word = term.words[0]
        if len(word) < MIN_PREFIX_CHARS:
            self.notes.append(
                f"{word}* searched as a whole word: a prefix needs {MIN_PREFIX_CHARS} letters."
            )
            return replace(term, prefix=False)
        if self.prefixes >= MAX_PREFIX_TERMS:
            self.notes.append(
                f"{word}* searched as a whole word: at most {MAX_PREFIX_TERMS} prefix terms."
            )
            return replace(term, prefix=False)
        self.prefixes += 1
        return term


def parse_search(text: str) -> SearchQuery | None:
    """Parse a search box; None when it holds nothing searchable (empty, only punctuation)."""
    state = _Parse()
    if len(text) > MAX_QUERY_CHARS:
        state.notes.append(f"The search was cut to its first {MAX_QUERY_CHARS} characters.")
    join_next = False
    for match in _TOKEN.finditer(text[:MAX_QUERY_CHARS]):
        phrase, raw = match.group(1), match.group(2)
        if raw in ("OR", "|"):
            join_next = bool(state.groups)
            continue
        if raw == "AND":
            continue
        term = _term(phrase, raw)
        if term is None:
            continue
        if not state.add(term, join_next and not term.negated):
            break
        join_next = False
    groups, excluded = state.groups, state.excluded
    if not groups and not excluded:
        return None
    if not groups:
        # Only exclusions: every message without them, as a mail client lists for `-word`
        # (searching for the word instead, as before, answered the opposite). Said on the page.
        shown = ", ".join(" ".join(t.words) + ("*" if t.prefix else "") for t in excluded)
        state.notes.append(f"Showing every message without {shown}.")
    notes = tuple(dict.fromkeys(state.notes))
    return SearchQuery(tuple(tuple(g) for g in groups), tuple(excluded), notes)


def _term(phrase: str | None, raw: str | None) -> Term | None:
    if phrase is not None:
        words = tuple(_WORD.findall(phrase))
        return Term(words) if words else None
    assert raw is not None
    negated = raw.startswith("-") and len(raw) > 1
    prefix = raw.endswith("*")
    words = tuple(_WORD.findall(raw))
    if not words:
        return None
    return Term(words, prefix=prefix and len(words) == 1, negated=negated)


def terms_pattern(terms: list[Term]) -> re.Pattern[str] | None:
    """A regex finding any of the terms (words of a phrase separated by non-word runs)."""
    alternatives = []
    for term in terms:
        body = r"\W+".join(re.escape(w) for w in term.words)
        alternatives.append(body + (r"\w*" if term.prefix else r"\b"))
    if not alternatives:
        return None
    return re.compile(r"\b(?:" + "|".join(alternatives) + ")", re.IGNORECASE)


def highlight(text: str, pattern: re.Pattern[str] | None) -> str:
    """HTML of `text` with every match in `<mark>`: each piece escaped before marking."""
    if pattern is None:
        return html.escape(text)
    out: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        out.append("<mark>" + html.escape(match.group(0)) + "</mark>")
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def snippet(text: str, pattern: re.Pattern[str] | None, width: int = 180) -> str:
    """HTML of a window of `text` around its first match (or its start), highlighted."""
    flat = " ".join(text.split())
    start = 0
    found = pattern.search(flat) if pattern is not None else None
    if found is not None and found.start() > width // 3:
        start = found.start() - width // 3
    piece = flat[start : start + width]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(flat) else ""
    return html.escape(prefix) + highlight(piece, pattern) + html.escape(suffix)
