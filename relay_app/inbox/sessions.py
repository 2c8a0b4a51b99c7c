"""Operator sessions for the inbox: login, the session cookie and CSRF tokens.

- `relay_app.inbox.login` checks the password (throttled, on its own thread) and then
  opens a session here; node tokens are never accepted for the inbox.
- The session cookie holds a random 256-bit token (HttpOnly, SameSite=Strict, Secure
  when the request really came over https: `relay_app.inbox.forwarded`). Sessions live
  in memory: a relay restart logs out.
- Every state-changing POST carries the session's CSRF token (a hidden form field) and,
  when the browser sends an Origin or Referer, it must name this host.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

COOKIE = "commander_inbox"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 256


@dataclass
class Session:
    """One logged-in operator."""

    token: str
    user: str
    csrf: str
    expires: float
    flash: str = ""

    def take_flash(self) -> str:
        """The pending one-time notice, cleared."""
        text, self.flash = self.flash, ""
        return text


class Sessions:
    """The logged-in operators, by cookie token."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """Start with no sessions."""
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def open(self, user: str) -> Session:
        """A new session for `user`, whose password was just checked."""
        session = Session(
            token=secrets.token_urlsafe(32),
            user=user,
            csrf=secrets.token_urlsafe(32),
            expires=self._clock() + SESSION_TTL_S,
        )
        with self._lock:
            self._expire()
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session for a cookie value; extends it (sliding expiry)."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            now = self._clock()
            if session is None or session.expires < now:
                self._sessions.pop(token, None)
                return None
            session.expires = now + SESSION_TTL_S
            return session

    def logout(self, token: str | None) -> None:
        """End a session."""
        with self._lock:
            self._sessions.pop(token or "", None)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._sessions.items() if s.expires < now]:
            del self._sessions[token]
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.expires)
            del self._sessions[oldest.token]


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
