"""HTTP client of the relay API, one per actor thread (a requests.Session is not shared).

Every failure becomes RelayUnavailable (retry later: network errors, timeouts,
408, 429, 5xx, 507, and 401, a missing or wrong token that an operator fixes
without the data being at fault) or RelayRejected (the request itself is at
fault: another 4xx in the relay's JSON, 403 included, which the relay answers to a body
naming another node, so resending it unchanged can never succeed; a 4xx that is not the
relay's JSON, such as its TLS port's answer to plain HTTP, is retried). A write counts as stored
only when the answer is the relay's acknowledgement naming it: a 2xx from anything else
at the relay's address (a proxy, a captive portal) stored nothing, so it is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from runtime.core.deadline import DeadlineSession
from runtime.core.envelope import MessageEnvelope, from_stored
from runtime.core.errors import InvalidMessage, RelayRejected, RelayUnavailable, RelayUntrusted
from runtime.core.logsafe import quote
from runtime.core.wire import message_json

RETRYABLE = {401, 408, 429, 507}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RelayTarget:
    """Where the relay is and how this node proves who it is."""

    base_url: str
    node_id: str
    token: str
    # Each socket operation waits at most this long, and a whole request twice this.
    timeout: float = 5.0
    # For an https relay: the CA file its certificate must verify against; None: the system store.
    ca_file: str | None = None
    # Other relays of the same cluster store, tried in order when this one cannot be
    # reached or answers 5xx; after `drift_back_s` on another, the first is tried again.
    fallbacks: tuple[str, ...] = ()
    drift_back_s: float = 60.0

    @property
    def urls(self) -> tuple[str, ...]:
        """Every relay's base URL, the preferred first."""
        return (self.base_url, *self.fallbacks)


class RelayClient:
    """Talks to a relay with keep-alive; one per thread (its Session is not shared).

    With fallbacks, a request the current relay cannot answer (a network error, a 5xx)
    goes to the next at once: every write is idempotent, since the relays share one
    store and the msg_id (or batch_id) decides whether it is new.
    """

    def __init__(self, target: RelayTarget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self._clock = clock
        self._at = 0  # index into target.urls of the relay in use
        self._moved_at = 0.0
        # A relay that trickles its answer must not hold an actor longer than this.
        self.session = DeadlineSession(2 * target.timeout)
        # Never False: an https relay is verified, against the CA file or the system store.
        # Given with each request: a session's own `verify` loses to REQUESTS_CA_BUNDLE.
        self._verify: str | bool = target.ca_file or True
        self.session.headers.update(
            {
                "X-Commander-Node": target.node_id,
                "Authorization": f"Bearer {target.token}",
                "Content-Type": "application/json",
            }
        )

    @property
    def current_url(self) -> str:
        """The base URL of the relay in use."""
        return self.target.urls[self._at]

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def push_message(self, envelope: MessageEnvelope) -> None:
        """POST /sync/message; returns once the relay has committed it."""
        answer = self._post("/sync/message", message_json(envelope), {})
        _expect_ack(answer, "/sync/message", {"status": "stored", "msg_id": envelope.msg_id})

    def push_batch(self, gzip_body: bytes, batch_id: str) -> None:
        """POST /sync/messages with an already gzip-compressed batch body of `batch_id`."""
        answer = self._post("/sync/messages", gzip_body, {"Content-Encoding": "gzip"})
        _expect_ack(answer, "/sync/messages", {"status": "acked", "batch_id": batch_id})

    def report_status(self, report: dict[str, Any]) -> None:
        """POST /sync/status with this node's health figures."""
        self._post("/sync/status", orjson.dumps(report), {})

    def get_message(self, msg_id: str) -> MessageEnvelope | None:
        """GET /query/messages/<msg_id>; None when the relay does not have it."""
        response = self._send("GET", f"/query/messages/{msg_id}", missing_ok=True)
        url = response.url
        if response.status_code == 404:
            return None
        try:
            # As stored: a row the relay took under an older rule still reads.
            return from_stored(strip_relay_fields(response.json()))
        except (ValueError, InvalidMessage) as exc:  # not the relay, or an answer cut short
            status = response.status_code
            raise RelayUnavailable(f"GET {url}: HTTP {status} is not a message: {exc}") from exc

    def get_mail(self, recipients: list[str], after: int, wait: float) -> tuple[list[Any], int]:
        """GET /sync/mail: (messages, cursor) for `recipients` past `after`, waiting `wait` s.

        The target's timeout must exceed `wait` (the relay answers at the end of it).
        """
        params: dict[str, Any] = {"for": recipients, "after": after, "wait": wait}
        response = self._send("GET", "/sync/mail", params=params)
        url = response.url
        try:
            data = response.json()
            return list(data["messages"]), int(data["cursor"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RelayUnavailable(f"GET {url}: not the relay's mail: {exc}") from exc

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, int]:
        """GET a JSON answer: (the parsed body, the bytes received)."""
        response = self._send("GET", path, params=params or {})
        try:
            return response.json(), len(response.content)
        except ValueError as exc:  # not the relay, or an answer cut short
            raise RelayUnavailable(f"GET {response.url}: not JSON: {exc}") from exc

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return self._send("POST", path, data=body, headers=headers)

    def _send(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> requests.Response:
        """The request to the relay in use; if it cannot answer, to each other one in turn."""
        urls = self.target.urls
        if self._at and self._clock() - self._moved_at >= self.target.drift_back_s:
            self._move(0, "back to the preferred relay")
        error: RelayUnavailable | None = None
        for step in range(len(urls)):
            at = (self._at + step) % len(urls)
            try:
                response = self._once(method, urls[at], path, missing_ok, kwargs)
            except RelayUnavailable as exc:
                if exc.status is not None and exc.status < 500:
                    raise  # this relay answered, and any other would answer the same
                error = exc
                continue
            if at != self._at:
                self._move(at, f"{urls[self._at]} failed ({error})")
            return response
        assert error is not None
        raise error

    def _once(
        self, method: str, base: str, path: str, missing_ok: bool, kwargs: dict[str, Any]
    ) -> requests.Response:
        url = base + path
        what = f"{method} {path}" if method == "POST" else f"{method} {url}"
        try:
            response = self.session.request(
                method, url, timeout=self.target.timeout, verify=self._verify, **kwargs
            )
        except requests.RequestException as exc:
            raise _unavailable(what, exc) from exc
        if not (missing_ok and response.status_code == 404):
            _raise_for_status(response, path if method == "POST" else url)
        return response

    def _move(self, at: int, why: str) -> None:
        logger.warning("relay %s in use: %s", self.target.urls[at], quote(why))
        self._at, self._moved_at = at, self._clock()


def _unavailable(what: str, exc: requests.RequestException) -> RelayUnavailable:
    """The failure as RelayUnavailable; a certificate that does not verify says so first."""
    if isinstance(exc, requests.exceptions.SSLError):
        # The handshake failed before any byte of the request (or its token) was sent.
        return RelayUntrusted(
            f"{what}: certificate verification failed (check relay.ca_file or"
            f" --relay-ca-file, and the relay's certificate hosts): {exc}"
        )
    return RelayUnavailable(f"{what}: {exc.__class__.__name__}: {exc}")


def _raise_for_status(response: requests.Response, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = response.text[:300]
    if status in RETRYABLE or status >= 500 or not _relay_refusal(response):
        raise RelayUnavailable(f"{what}: HTTP {status}: {detail}", status)
    raise RelayRejected(f"{what}: HTTP {status}: {detail}", status)


def _relay_refusal(response: requests.Response) -> bool:
    """Whether a 4xx is the relay's own `{"error": ...}`, judging the request.

    Anything else at its address (the TLS port answering plain HTTP, a proxy's page)
    said nothing about the messages: they wait for the operator to fix the URL.
    """
    try:
        data = response.json()
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), str)


def _expect_ack(response: requests.Response, what: str, ack: dict[str, str]) -> None:
    """RelayUnavailable unless the 2xx answer carries every field of `ack`."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in ack.items()):
        detail = response.text[:300]
        status = response.status_code
        raise RelayUnavailable(
            f"{what}: HTTP {status} is not the relay's acknowledgement: {detail}"
        )


def strip_relay_fields(data: Any) -> Any:
    """Drop what the relay adds (received_at, status) before rebuilding the envelope."""
    if isinstance(data, dict) and "message" in data and isinstance(data["message"], dict):
        data = data["message"]
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in ("received_at", "status", "id")}
    return data
