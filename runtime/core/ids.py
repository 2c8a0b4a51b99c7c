"""The one id rule: agent, node, message, batch and file ids, token-file keys, CLI names.

Ids end up in file paths, URLs, log lines and HTTP headers, so every door matches
them whole against one pattern: 1-128 letters, digits, '.', '_', ':' or '-', the
first a letter or digit (no '..', no leading '-' an option parser would take).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ID_PATTERN", "ID_RULE", "ID_SCHEMA_PATTERN", "ID_SHAPE", "MAX_ID", "is_id"]

MAX_ID = 128
_ID_REGEX = rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_ID - 1}}}"
# `\Z`, not `$`: `$` also matches before a trailing newline ("evil\n" would pass).
ID_PATTERN = re.compile(rf"\A{_ID_REGEX}\Z")
# The same rule for JSON Schema / OpenAPI (ECMA-262 `$` has no trailing-newline case).
ID_SCHEMA_PATTERN = f"^{_ID_REGEX}$"
# What an id is, in words: config problems say "expected an id: ...", doors "expected ...".
ID_SHAPE = (
    f"1-{MAX_ID} characters of letters, digits, '.', '_', ':' or '-'"
    " starting with a letter or digit"
)
ID_RULE = f"expected {ID_SHAPE}"


def is_id(value: Any) -> bool:
    """Whether `value` is a whole valid id (safe in paths, URLs, logs and headers)."""
    return isinstance(value, str) and ID_PATTERN.match(value) is not None
