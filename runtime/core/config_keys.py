"""Strict config keys: a key nobody reads and a reference to nothing are problems, not silence.

A misspelt key (`retry_maxx`) left the default in force while the file looked right, and an
agent naming no node in relay.yaml never ran; both now fail `commander-check-config`, and
every daemon that loads the same files, with the file, the key and what was expected.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from runtime.core.errors import ConfigProblem


def unknown_keys(
    data: Mapping[str, Any],
    known: Collection[str],
    file: str,
    problems: list[ConfigProblem],
    prefix: str = "",
) -> None:
    """Record a problem for each key of `data` not in `known`, with the likely intended one."""
    for key in data:
        if key in known:
            continue
        text = str(key)
        close = difflib.get_close_matches(text, [str(k) for k in known], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        expected = f"a known key ({hint}one of {', '.join(sorted(known))})"
        problems.append(ConfigProblem(file, prefix + text[:64], expected))


def dangling_agents(
    node_ids: Collection[str], agents: Iterable[tuple[str, str]], problems: list[ConfigProblem]
) -> None:
    """Record each agent (file, node_id) naming no node of relay.yaml: no node would run it."""
    if not node_ids:
        return  # relay.yaml did not load; that problem is already recorded
    for file, node_id in agents:
        if node_id not in node_ids and node_id != "invalid":  # "invalid": already recorded
            expected = f"the id of a node in relay.yaml ({', '.join(sorted(node_ids))})"
            problems.append(ConfigProblem(file, "node_id", expected, repr(node_id)))
