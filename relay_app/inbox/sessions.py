"""Operator sessions for the inbox: login, the session cookie and CSRF tokens.

- `relay_app.inbox.login` checks the password (throttled, on its own thread) and then
  opens a session here; node tokens are never accepted for the inbox.
- The session cookie holds a random 256-bit token (HttpOnly, SameSite=Strict, Secure
  when the request really came over https: `relay_app.inbox.forwarded`). Sessions live
  in the store (`relay_app.store_sessions`), found by the sha256 of that token, never
  by the token itself: a relay restart keeps every login, and so does another relay on
  the same database. A session expires SESSION_TTL_S after its last use; at most
  MAX_SESSIONS live at once (a new login ends the one closest to expiring).
- Every state-changing POST carries the session's CSRF token (a hidden form field) and,
  when the browser sends an Origin or Referer, it must name this host.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from relay_app.errors import RelayAppError
from relay_app.ingest import Ingest
from relay_app.store_sessions import (
    EndSession,
    ExtendSession,
    OpenSession,
    SessionRecord,
    SessionStore,
    SetFlash,
)

logger = logging.getLogger(__name__)

COOKIE = "commander_inbox"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 256
# A session's expiry is moved on at most this often: each move is a commit, and a page
# open in a browser asks for updates every second.
EXTEND_EVERY_S = 60.0


@dataclass(frozen=True)
class Session:
    """One logged-in operator, as one request sees it (the token only from its cookie)."""

    token: str
    user: str
    csrf: str
    expires: float
    flash: str = ""


class Sessions:
    """The logged-in operators, kept in the store; writes go through the IngestActor."""

    def __init__(
        self, store: SessionStore, ingest: Ingest, clock: Callable[[], float] = time.time
    ) -> None:
        """Read sessions from `store`, write them through `ingest`."""
        self._store = store
        self._ingest = ingest
        self._clock = clock

    def open(self, user: str) -> Session:
        """A new session for `user`, whose password was just checked."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        record = SessionRecord(user, secrets.token_urlsafe(32), now + SESSION_TTL_S)
        self._ingest.submit(OpenSession(token_sha256(token), record, now, MAX_SESSIONS))
        return Session(token, record.user, record.csrf, record.expires)

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie value; extends it (sliding expiry)."""
        if not token:
            return None
        now = self._clock()
        found = self._store.find(token_sha256(token), now)
        if found is None:
            return None
        expires = found.expires
        if expires - now < SESSION_TTL_S - EXTEND_EVERY_S:
            expires = self._extend(token, now + SESSION_TTL_S) or expires
        return Session(token, found.user, found.csrf, expires, found.flash)

    def _extend(self, token: str, expires: float) -> float | None:
        """Move the expiry on; None when the store refused (the session stays as it was)."""
        try:
            self._ingest.submit(ExtendSession(token_sha256(token), expires))
        except RelayAppError as exc:
            logger.warning("inbox session not extended: %s", exc)
            return None
        return expires

    def logout(self, token: str | None) -> None:
        """End a session."""
        if token:
            self._ingest.submit(EndSession(token_sha256(token)))

    def flash(self, session: Session, text: str) -> None:
        """Leave a one-time notice for the session's next page (lost if the store refuses:
        what it tells already happened, so the request does not fail for it)."""
        self._set_flash(session, text)

    def take_flash(self, session: Session) -> str:
        """The notice the session held when this request read it, cleared."""
        if session.flash:
            self._set_flash(session, "")
        return session.flash

    def _set_flash(self, session: Session, text: str) -> None:
        try:
            self._ingest.submit(SetFlash(token_sha256(session.token), text))
        except RelayAppError as exc:
            logger.warning("inbox notice not stored: %s", exc)


def token_sha256(token: str) -> str:
    """What the store knows of a session token: its sha256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_ok(session: Session, sent: str | None) -> bool:
    """Whether the form's CSRF token is this session's."""
    return bool(sent) and hmac.compare_digest(session.csrf.encode(), (sent or "").encode())


def same_origin(environ: Mapping[str, Any]) -> bool:
    """False when the browser says the request comes from another site."""
    host = str(environ.get("HTTP_HOST", ""))
    origin: str | None = environ.get("HTTP_ORIGIN")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc == host
    referer: str | None = environ.get("HTTP_REFERER")
    return referer is None or urlsplit(referer).netloc == host


def cookie_header(session: Session | None, secure: bool) -> str:
    """The Set-Cookie value that stores (or, for None, clears) the session cookie."""
    value = session.token if session is not None else ""
    age = SESSION_TTL_S if session is not None else 0
    flags = f"Path=/; Max-Age={age}; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={value}; {flags}" + ("; Secure" if secure else "")


def cookie_token(cookie_header_value: str) -> str | None:
    """The session token from a Cookie request header."""
    for part in cookie_header_value.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value or None
    return None
