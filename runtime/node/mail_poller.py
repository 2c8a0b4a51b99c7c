"""MailPoller: one long poll per node fetches its agents' mail from the relay into MailStore.

One thread and one connection serve every agent of the node: the poll names them all
(and their roles), so waiting agents cost the relay one parked request per node.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from runtime.core.errors import CommanderError
from runtime.core.relay_client import RelayClient, RelayTarget
from runtime.core.sqlite import DatabaseError
from runtime.node.mail_store import MailStore

logger = logging.getLogger(__name__)

# The relay answers an empty poll after this long (its cap is relay_app.mail.MAX_WAIT).
POLL_WAIT = 20.0
# After a failed poll, wait this long before the next one (doubling up to the cap).
RETRY_BASE, RETRY_CAP = 0.5, 10.0


class MailPoller:
    """Long-polls GET /sync/mail for `recipients` and stores each answer."""

    def __init__(
        self, target: RelayTarget, recipients: list[str], store: MailStore, wait: float = POLL_WAIT
    ) -> None:
        """Nothing runs until `start`; the poll's socket timeout is its wait plus the target's."""
        self._target = dataclasses.replace(target, timeout=wait + target.timeout)
        self._recipients = recipients
        self._store = store
        self._wait = wait
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mail-poller", daemon=True)

    def start(self) -> MailPoller:
        """Start polling in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling; a poll in flight is abandoned (the thread is a daemon, its answer is
        not stored: the relay's cursor was not moved, so the next start asks again)."""
        self._stopped.set()
        self._thread.join(timeout=0.5)

    def poll_once(self, client: RelayClient, wait: float) -> int:
        """One poll; returns how many new messages were stored."""
        messages, cursor = client.get_mail(self._recipients, self._store.relay_cursor(), wait)
        if self._stopped.is_set():
            return 0
        return self._store.store(messages, cursor)

    def _run(self) -> None:
        client = RelayClient(self._target)
        delay = RETRY_BASE
        try:
            while not self._stopped.is_set():
                try:
                    self.poll_once(client, self._wait)
                    delay = RETRY_BASE
                except (CommanderError, OSError, ValueError, DatabaseError) as exc:
                    logger.warning("mail poll failed (next in %.1fs): %s", delay, exc)
                    self._stopped.wait(delay)
                    delay = min(RETRY_CAP, delay * 2)
        finally:
            client.close()
