"""Reads from the relay for the agent API's cache misses, one HTTP session per thread."""

from __future__ import annotations

import logging
import threading

from runtime.core.envelope import MessageEnvelope
from runtime.core.errors import RelayError
from runtime.core.logsafe import quote
from runtime.core.relay_client import RelayClient, RelayTarget

logger = logging.getLogger(__name__)


class RemoteReader:
    """Looks messages up on the relay; agents call it from their own threads."""

    def __init__(self, target: RelayTarget) -> None:
        self._target = target
        self._local = threading.local()

    def get(self, msg_id: str) -> MessageEnvelope | None:
        """Return the relay's copy of a message, or None if it has none or cannot be reached."""
        client: RelayClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = RelayClient(self._target)
        try:
            return client.get_message(msg_id)
        except RelayError as exc:
            # A read must not fail the agent because the relay is away: it is a miss.
            logger.warning("relay lookup of %s failed: %s", quote(msg_id), quote(exc))
            return None
