"""Words as the hot full-text index cuts them, for the archive, which has no such index.

The hot store's `messages_fts` uses FTS5's unicode61 tokenizer with remove_diacritics 2:
a word is a run of token characters (letters, digits, private use, and what its Unicode
tables do not name, such as newer emoji), each folded on its own (lower case, no
diacritics; ligatures and superscripts stay as they are). Python's `\\w` and NFKD differ
on exactly those, so a search would find an archived message the hot index would not,
or miss one it would find. This module asks SQLite how each character it has not met
tokenizes, once, and keeps the answer in a translate table the text then runs through.
"""

from __future__ import annotations

import sqlite3
import threading

# As relay_app.stores.sqlite_schema creates messages_fts.
TOKENIZER = "unicode61 remove_diacritics 2"
SEPARATOR = " "

_lock = threading.Lock()
# code point -> its folded form, or SEPARATOR; NUL ends a C string, so it is told here
_table: dict[int, str] = {0: SEPARATOR}
_known: set[str] = {"\x00"}
_conn: sqlite3.Connection | None = None


def fts_words(text: str) -> list[str]:
    """The words of `text` as the hot index holds them, in order."""
    unknown = set(text).difference(_known)
    if unknown:
        _learn(unknown)
    return [word for word in text.translate(_table).split(SEPARATOR) if word]


def _learn(chars: set[str]) -> None:
    """Ask SQLite how each of `chars` tokenizes between two letters: within one word
    (and folded to what), or between two."""
    global _conn  # noqa: PLW0603 - one in-memory tokenizer for the process, made on first use
    with _lock:
        new = sorted(chars.difference(_known))
        for char in [c for c in new if not c.isprintable() and _unencodable(c)]:
            _table[ord(char)] = SEPARATOR  # a lone surrogate: no UTF-8, no word
            _known.add(char)
            new.remove(char)
        if not new:
            return
        if _conn is None:
            _conn = sqlite3.connect(":memory:", check_same_thread=False)
            _conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(body, tokenize='{TOKENIZER}')")
            _conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        _conn.execute("DELETE FROM t")
        _conn.executemany(
            "INSERT INTO t (rowid, body) VALUES (?, ?)", [(i, f"a{c}b") for i, c in enumerate(new)]
        )
        terms: dict[int, list[str]] = {}
        for doc, term in _conn.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
            terms.setdefault(int(doc), []).append(str(term))
        for i, char in enumerate(new):
            found = terms.get(i, [])
            one_word = len(found) == 1 and found[0][:1] == "a" and found[0][-1:] == "b"
            _table[ord(char)] = found[0][1:-1] if one_word else SEPARATOR
            _known.add(char)


def _unencodable(char: str) -> bool:
    try:
        char.encode()
    except UnicodeEncodeError:
        return True
    return False
