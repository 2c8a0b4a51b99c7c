"""The relay's side of refill: GET /sync/digests and GET /sync/ids, for a node's own agents.

A node compares the digests (runtime.core.digest) with those of the messages it holds,
then lists the ids of each hour that differs and resends, through its outbox, what the
relay lacks. Both answers carry the corpus's generation: a restore changes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bottle

from relay_app.http import json_response
from relay_app.store_refill import DIGEST_ROWS, IDS_LIMIT, RefillStore
from relay_app.validate import ids_request, range_request
from runtime.core import digest
from runtime.core.http_query import decoded_query

Authorize = Callable[[str], str]  # agent_id -> the node id allowed to read it (else 403)


def generation_text(refill: RefillStore) -> str:
    """The generation as the wire shows it: 16 hex digits."""
    return f"{refill.generation():016x}"


def digests_answer(refill: RefillStore, authorize: Authorize) -> bottle.HTTPResponse:
    """The digests of one agent's messages from this node, by hour, in [since, until)."""
    request = range_request(decoded_query(bottle.request).dict)
    node_id = authorize(request.agent_id)
    page = refill.digests(request.agent_id, node_id, request.since, request.until, DIGEST_ROWS)
    body: dict[str, Any] = {
        "generation": generation_text(refill),
        "bucket_seconds": digest.BUCKET_SECONDS,
        "digests": digest.encode(page.digests),
        "next_since": page.next_since,
    }
    return json_response(body)


def ids_answer(refill: RefillStore, authorize: Authorize) -> bottle.HTTPResponse:
    """The msg_ids of one agent's messages from this node in [since, until), paged."""
    request = ids_request(decoded_query(bottle.request).dict, digest.BUCKET_SECONDS)
    node_id = authorize(request.agent_id)
    ids = refill.ids(
        request.agent_id, node_id, request.since, request.until, request.after, IDS_LIMIT
    )
    more = len(ids) == IDS_LIMIT
    return json_response({"ids": ids, "next": ids[-1] if more else None})
