"""What refill reads of the store: the corpus's generation, digests of one agent's
msg_ids by hour, and the ids of a time range (runtime.core.digest has the arithmetic).

A node compares the digests with those of what it holds and resends what the relay
lacks; the ids of a mismatching hour tell it which. Both reads cover one agent's
messages stored from one node: a node resends only its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runtime.core.digest import Digests

# A digests answer reads about this many rows at most (then ends at an hour's edge) and
# an ids answer lists at most IDS_LIMIT: a caller pages on with `next`.
DIGEST_ROWS = 100_000
IDS_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class DigestPage:
    """Digests of the hours from `since` on, up to `next_since` (None: to the end)."""

    digests: Digests
    next_since: float | None


class RefillStore(Protocol):
    """The reads refill needs; every engine has them."""

    def generation(self) -> int:
        """This copy of the corpus's generation: a restore gives it a new one."""

    def digests(
        self, agent_id: str, node_id: str, since: float, until: float, max_rows: int
    ) -> DigestPage:
        """Digests of the agent's messages from the node reported in [since, until)."""

    def ids(
        self, agent_id: str, node_id: str, since: float, until: float, after: str, limit: int
    ) -> list[str]:
        """The agent's msg_ids from the node reported in [since, until), past `after` in
        msg_id order, at most `limit`."""
