"""One login attempt: throttle, hash on the verifier thread, log, open a session.

Every outcome is logged or counted, never with the password or the hash: a failure
and a success as a log line with the user name (escaped) and the client address; a
refused attempt (throttled, or the verifier busy) only in /metrics, so a flood of them
cannot flood the log as well.
"""

from __future__ import annotations

import hmac
import logging
import math
from dataclasses import dataclass

from relay_app.inbox.sessions import Session, Sessions
from relay_app.inbox.throttle import LoginThrottle
from relay_app.inbox.verifier import PasswordVerifier, VerifierBusy
from runtime.core.logsafe import quote

logger = logging.getLogger(__name__)

OUTCOMES = ("success", "failure", "throttled", "busy")
# The WSGI environ key where the login route leaves the outcome for relay_app.metrics.
LOGIN_OUTCOME_KEY = "commander.login_outcome"
MAX_PASSWORD = 1024
# A busy verifier asks the client back after this long.
BUSY_RETRY_S = 1


@dataclass(frozen=True)
class Attempt:
    """How a login attempt ended; `retry_after` (seconds) for throttled and busy."""

    outcome: str
    session: Session | None = None
    retry_after: int = 0


class Logins:
    """The operator's logins, throttled; the one place a password is checked."""

    def __init__(
        self, user: str, password_hash: str | None, sessions: Sessions, throttle: LoginThrottle
    ) -> None:
        """Start the verifier thread when a password is configured."""
        self._user = user
        self._sessions = sessions
        self.throttle = throttle
        self._verifier = PasswordVerifier(password_hash) if password_hash else None

    @property
    def enabled(self) -> bool:
        """Whether an operator password is configured at all."""
        return self._verifier is not None

    def attempt(self, user: str, password: str, address: str) -> Attempt:
        """Try to log in `user` from `address`."""
        if self._verifier is None:
            return Attempt("failure")
        wait = self.throttle.admit(address)
        if wait > 0:
            return Attempt("throttled", retry_after=max(1, math.ceil(wait)))
        try:
            password_ok = len(password) <= MAX_PASSWORD and self._verifier.verify(password)
        except VerifierBusy:
            self.throttle.refund(address)
            return Attempt("busy", retry_after=BUSY_RETRY_S)
        if password_ok and hmac.compare_digest(user.encode(), self._user.encode()):
            self.throttle.succeeded(address)
            logger.info("inbox login: user %s from %s", quote(user), address)
            return Attempt("success", self._sessions.open(self._user))
        failures = self.throttle.failures(address)
        logger.warning(
            "inbox login failed: user %s from %s (%d failure(s) in a row; next try in %.0f s)",
            quote(user),
            address,
            failures,
            self.throttle.delay(failures),
        )
        return Attempt("failure")

    def close(self) -> None:
        """Stop the verifier thread."""
        if self._verifier is not None:
            self._verifier.close()
