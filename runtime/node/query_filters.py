"""The one rule for an agent's query filters: a name not a filter is refused, never ignored.

An ignored filter returns everything, which reads as a right answer; so the in-process
`AgentHandle.query` and `NodeClient.query` both check names here before asking anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from actors.messages import Query
from runtime.core.errors import InvalidMessage

# The filters an agent's query takes, in the order the docs list them.
QUERY_FILTERS = tuple(f.name for f in fields(Query))


def check_filter_names(filters: Mapping[str, Any]) -> None:
    """Raise InvalidMessage naming the first filter that is not one of QUERY_FILTERS."""
    unknown = sorted(set(filters) - set(QUERY_FILTERS))
    if unknown:
        expected = ", ".join(QUERY_FILTERS)
        raise InvalidMessage(unknown[0][:64], f"unknown filter; expected one of {expected}")


def make_query(filters: Mapping[str, Any]) -> Query:
    """The cache's Query for these filters, once their names are known ones."""
    check_filter_names(filters)
    return Query(**filters)
