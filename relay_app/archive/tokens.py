"""Words as the hot full-text index cuts them, for the archive, which has no such index.

The engine's index decides what a word is. SQLite's `messages_fts` (unicode61 with
remove_diacritics 2) keeps runs of token characters (letters, digits, private use, and
what its Unicode tables do not name, such as newer emoji), each folded on its own: lower
case, no diacritics, ligatures and superscripts left as they are. Python's `\\w` and NFKD
differ on exactly those, so a search would find an archived message the index would
not, or miss one it would find. The engine's store tells how each character cuts
(`relay_app.store_archive.use_word_classifier`); each character is asked about once and
the answers kept in a translate table the text then runs through at C speed.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Sequence

from relay_app.store_archive import WordClassifier, word_classifier

SEPARATOR = " "

_lock = threading.Lock()
# code point -> its folded form, or SEPARATOR; NUL ends a C string, so it is told here
_table: dict[int, str] = {}
_known: set[str] = set()
_learned_from: list[WordClassifier | None] = []


def fts_words(text: str) -> list[str]:
    """The words of `text` as the engine's index holds them, in order."""
    classifier = word_classifier()
    if _learned_from != [classifier]:
        _forget(classifier)
    unknown = set(text).difference(_known)
    if unknown:
        _learn(unknown, classifier)
    return [word for word in text.translate(_table).split(SEPARATOR) if word]


def _forget(classifier: WordClassifier | None) -> None:
    """Start a new table for another classifier (a store opened after words were cut)."""
    with _lock:
        _table.clear()
        _known.clear()
        _table[0] = SEPARATOR
        _known.add("\x00")
        _learned_from[:] = [classifier]


def _learn(chars: set[str], classifier: WordClassifier | None) -> None:
    with _lock:
        new = [c for c in sorted(chars.difference(_known)) if _encodable(c)]
        folded = (classifier or _unicode_rule)(new) if new else []
        for char, form in zip(new, folded, strict=True):
            _table[ord(char)] = SEPARATOR if form is None else form
            _known.add(char)
        for char in chars.difference(_known):  # a lone surrogate: no UTF-8, no word
            _table[ord(char)] = SEPARATOR
            _known.add(char)


def _unicode_rule(chars: Sequence[str]) -> list[str | None]:
    """unicode61's rule from Python's tables, before any store told its own: letters,
    numbers and private use are word characters, marks are folded away."""
    out: list[str | None] = []
    for char in chars:
        category = unicodedata.category(char)
        if category[0] == "M":
            out.append("")
        elif category[0] in "LN" or category == "Co":
            base = unicodedata.normalize("NFD", char.lower())
            out.append("".join(c for c in base if not unicodedata.combining(c)))
        else:
            out.append(None)
    return out


def _encodable(char: str) -> bool:
    try:
        char.encode()
    except UnicodeEncodeError:
        return False
    return True
