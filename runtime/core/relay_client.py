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

from dataclasses import dataclass
from typing import Any

import orjson
import requests

from runtime.core.deadline import DeadlineSession
from runtime.core.envelope import MessageEnvelope, from_stored
from runtime.core.errors import InvalidMessage, RelayRejected, RelayUnavailable, RelayUntrusted
from runtime.core.wire import message_json

RETRYABLE = {401, 408, 429, 507}


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


class RelayClient:
    """Talks to one relay with keep-alive; one per thread (its Session is not shared)."""

    def __init__(self, target: RelayTarget) -> None:
        self.target = target
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
        url = f"{self.target.base_url}/query/messages/{msg_id}"
        try:
            response = self.session.get(url, timeout=self.target.timeout, verify=self._verify)
        except requests.RequestException as exc:
            raise _unavailable(f"GET {url}", exc) from exc
        if response.status_code == 404:
            return None
        _raise_for_status(response, url)
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
        url = f"{self.target.base_url}/sync/mail"
        params: dict[str, Any] = {"for": recipients, "after": after, "wait": wait}
        try:
            response = self.session.get(
                url, params=params, timeout=self.target.timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            raise _unavailable(f"GET {url}", exc) from exc
        _raise_for_status(response, url)
        try:
            data = response.json()
            return list(data["messages"]), int(data["cursor"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RelayUnavailable(f"GET {url}: not the relay's mail: {exc}") from exc

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        url = self.target.base_url + path
        try:
            response = self.session.post(
                url, data=body, headers=headers, timeout=self.target.timeout, verify=self._verify
            )
        except requests.RequestException as exc:
            raise _unavailable(f"POST {path}", exc) from exc
        _raise_for_status(response, path)
        return response


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
