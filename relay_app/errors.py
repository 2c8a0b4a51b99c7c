"""Errors raised by the relay; each one knows the HTTP status it answers with.

Hierarchy, under the one root `runtime.core.errors.CommanderError`::

    RelayAppError                 `status` is the HTTP status, str(exc) the JSON error
    ├── BadRequest           400  the body or query is malformed; the text says what is wrong
    ├── Unauthorized         401  no, unknown or wrong node token
    ├── Forbidden            403  a node writing as another node, or for an agent not its own
    ├── NotFound             404  no such message, file or route
    ├── Conflict             409  a msg_id the relay already holds for another agent
    ├── LengthRequired       411  a file upload without Content-Length
    ├── PayloadTooLarge      413  body, decompressed body, batch or file over its limit
    ├── UnsupportedMedia     415  a Content-Type or Content-Encoding the relay does not read
    ├── StoreUnavailable     503  the store failed for a reason that is not the client's
    ├── QueryTooSlow         503  a read ran past the time budget its caller gave the store
    └── StorageFull          507  free space below the floor or SQLite reports the disk full

Handlers raise these; `relay_app.http` turns them into `{"error": "..."}` responses.
Foreign exceptions are converted at the boundary (`raise StorageFull(...) from exc`).
"""

from __future__ import annotations

from typing import ClassVar

from runtime.core.errors import CommanderError


class RelayAppError(CommanderError):
    """Every error the relay raises on purpose to answer a request."""

    status: ClassVar[int] = 500


class BadRequest(RelayAppError):
    """The request is malformed; the message names the field and what was expected."""

    status = 400


class Unauthorized(RelayAppError):
    """The request carries no valid node token."""

    status = 401


class Forbidden(RelayAppError):
    """An authenticated node tried to write as another node, or for an agent not its own."""

    status = 403


class NotFound(RelayAppError):
    """The requested message, file or route does not exist."""

    status = 404


class Conflict(RelayAppError):
    """A msg_id already stored for another agent or node: acking it would lose this one."""

    status = 409


class LengthRequired(RelayAppError):
    """A streamed upload arrived without a Content-Length header."""

    status = 411


class PayloadTooLarge(RelayAppError):
    """A body, decompressed body, batch or file is over its configured limit."""

    status = 413


class UnsupportedMedia(RelayAppError):
    """The body's Content-Type or Content-Encoding is not one the relay reads."""

    status = 415


class StoreUnavailable(RelayAppError):
    """The store failed for a server-side reason; the client may retry later."""

    status = 503


class QueryTooSlow(RelayAppError):
    """A read ran out of its time budget and was stopped; a narrower one may answer."""

    status = 503


class StorageFull(RelayAppError):
    """The data directory is below its free-space floor or the database is full."""

    status = 507
