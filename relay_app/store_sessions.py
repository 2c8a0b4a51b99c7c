"""Operator sessions in the store, so every relay on one database knows every login.

A session is found by the sha256 of its cookie token: the store never holds the token
itself, so a copy of the database logs nobody in. Writes are ops the IngestActor hands
to the `StoreWriter`; the one read is `SessionStore.find`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A logged-in operator as stored: name, CSRF token, expiry, pending one-time notice."""

    user: str
    csrf: str
    expires: float
    flash: str = ""


@dataclass(frozen=True, slots=True)
class OpenSession:
    """Store a new session; first drop those expired at `now`, then the soonest to expire
    until fewer than `max_sessions` remain."""

    token_sha256: str
    record: SessionRecord
    now: float
    max_sessions: int


@dataclass(frozen=True, slots=True)
class ExtendSession:
    """Move a session's expiry to `expires` (never earlier; an ended session stays ended)."""

    token_sha256: str
    expires: float


@dataclass(frozen=True, slots=True)
class EndSession:
    """Delete a session (logout); deleting one that is gone changes nothing."""

    token_sha256: str


@dataclass(frozen=True, slots=True)
class SetFlash:
    """Replace a session's one-time notice ("" clears it)."""

    token_sha256: str
    text: str


SessionOp = OpenSession | ExtendSession | EndSession | SetFlash


class SessionStore(Protocol):
    """The session read."""

    def find(self, token_sha256: str, now: float) -> SessionRecord | None:
        """The session whose token has this sha256 (hex), unless gone or expired at `now`."""
