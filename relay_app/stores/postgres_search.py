"""A `SearchQuery` as a PostgreSQL tsquery, built only from lexemes quoted here.

No typed text reaches `to_tsquery`'s parser: each word is folded as the stored search
column was (`relay_app.stores.postgres.search_text`), cut into its letter-and-digit runs
(as SQLite's unicode61 tokenizer cuts it), and each run becomes a quoted tsquery literal.
Only `<->`, `:*`, `&`, `|` and `!` written here join them, so any input gives a valid
tsquery or none. Terms mean what they mean on SQLite: a term with no runs matches no
message, and excluding it leaves every message.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay_app.store_search import SearchQuery, Term, words

# The longest lexeme either side holds, in UTF-8 bytes: to_tsvector drops a longer word,
# and a tsquery refuses one; a term with one can match no message.
MAX_LEXEME_BYTES = 2046


@dataclass(frozen=True, slots=True)
class TsSearch:
    """A search as SQL: the rows it keeps are those whose `search` matches `query`,
    or, when `negate`, those that do not. `query` None: no row (`negate`: every row)."""

    query: str | None
    negate: bool = False


def literal(lexeme: str) -> str:
    """One lexeme as a quoted tsquery literal (quotes doubled, backslashes escaped)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def term_query(term: Term) -> str | None:
    """A term as a tsquery phrase (prefix on its last run); None when it matches nothing."""
    runs = [run for word in term.words for run in words(word)]
    if not runs or any(len(run.encode()) > MAX_LEXEME_BYTES for run in runs):
        return None
    parts = [literal(run) for run in runs]
    if term.prefix:
        parts[-1] += ":*"
    return " <-> ".join(parts)


def any_of(terms: tuple[Term, ...]) -> str | None:
    """The terms joined by OR; None when none of them can match."""
    found = [q for q in map(term_query, terms) if q is not None]
    return " | ".join(f"({q})" for q in found) or None


def ts_search(search: SearchQuery) -> TsSearch:
    """The tsquery of a search: every group (AND), none of the exclusions."""
    excluded = any_of(search.excluded)
    if not search.groups:
        return TsSearch(excluded, negate=True)
    groups = [any_of(group) for group in search.groups]
    if any(g is None for g in groups):
        return TsSearch(None)
    expression = " & ".join(f"({g})" for g in groups)
    if excluded is not None:
        expression += f" & !({excluded})"
    return TsSearch(expression)


def search_terms(search: SearchQuery) -> tuple[list[str], list[str]]:
    """WHERE terms over `m` keeping the rows a search finds, and their bound values."""
    found = ts_search(search)
    if found.query is None:
        return ([], []) if found.negate else (["FALSE"], [])
    match = "m.search @@ %s::tsquery"
    return [f"NOT ({match})" if found.negate else match], [found.query]
