"""Who may read /metrics (and the full /healthz): the holder of the metrics token.

With `relay.metrics_token_sha256` set, GET /metrics needs `Authorization: Bearer
<token>` (Prometheus: `authorization: {credentials_file: ...}`) or HTTP basic auth
whose password is the token (any user name: `basic_auth: {password_file: ...}`);
anything else gets 401 with a `WWW-Authenticate` challenge for both. Unset, /metrics
stays open as before, and the relay warns at start when it listens beyond loopback.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from relay_app.inbox.forwarded import Proxies
from relay_app.refusals import REFUSALS
from runtime.core.config import RelaySettings

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
METRICS_PATH = "/metrics"
UNAUTHORIZED_BODY = orjson.dumps({"error": "missing or wrong metrics token"})
CHALLENGES = ('Bearer realm="commander-relay metrics"', 'Basic realm="commander-relay metrics"')


def presented_token(authorization: str | None) -> str | None:
    """The token of a Bearer header, or the password of a Basic one; None otherwise."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None


def token_matches(token: str | None, expected_sha256: str | None) -> bool:
    """Whether `token` hashes to `expected_sha256` (constant-time; False when either is unset)."""
    if token is None or expected_sha256 is None:
        return False
    # Header values arrive as latin-1 text in WSGI; hash the bytes the client sent.
    actual = hashlib.sha256(token.encode("latin-1", "replace")).hexdigest()
    return hmac.compare_digest(actual, expected_sha256)


def metrics_reader(environ: dict[str, Any], settings: RelaySettings) -> bool:
    """Whether the request carries the metrics token."""
    token = presented_token(environ.get("HTTP_AUTHORIZATION"))
    return token_matches(token, settings.metrics_token_sha256)


class MetricsGate:
    """WSGI middleware in front of the metrics middleware: 401 for /metrics without the token."""

    def __init__(self, app: WsgiApp, settings: RelaySettings) -> None:
        """Guard `app`'s /metrics with `settings.metrics_token_sha256` (no-op when unset)."""
        self.app = app
        self.settings = settings
        self.proxies = Proxies(settings.trusted_proxies)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Refuse /metrics without the token; pass everything else on."""
        guarded = self.settings.metrics_token_sha256 is not None
        if not guarded or environ.get("PATH_INFO") != METRICS_PATH:
            return self.app(environ, start_response)
        if metrics_reader(environ, self.settings):
            return self.app(environ, start_response)
        REFUSALS.warning(
            "/metrics refused (401): %s token from %s",
            "a wrong" if environ.get("HTTP_AUTHORIZATION") else "no",
            self.proxies.client(environ),
        )
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        headers += [("WWW-Authenticate", challenge) for challenge in CHALLENGES]
        start_response("401 Unauthorized", headers)
        return [UNAUTHORIZED_BODY]


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`); a wildcard is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_metrics_open(settings: RelaySettings, host: str) -> bool:
    """Warn when /metrics is open to the network; whether it warned."""
    if settings.metrics_token_sha256 is not None or is_loopback(host):
        return False
    logger.warning(
        "/metrics is open to anyone who reaches %s (disk, database size, node names): "
        "set relay.metrics_token_sha256 (`commander-relay metrics-token`)",
        host,
    )
    return True
