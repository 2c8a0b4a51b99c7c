"""A small client of the node's loopback endpoint, for agents in other processes."""

from __future__ import annotations

from typing import Any

import requests

from runtime.envelope import ID_RULE, MessageEnvelope, from_stored, is_id
from runtime.errors import CacheFull, CommanderError, InvalidMessage


class NodeClient:
    """Writes, reads and queries one agent's cache through `commander-node`'s HTTP endpoint."""

    def __init__(self, base_url: str, agent_id: str, timeout: float = 10.0) -> None:
        if not is_id(agent_id):  # it becomes part of every URL's path
            raise InvalidMessage("agent_id", ID_RULE)
        self.base = f"{base_url.rstrip('/')}/agents/{agent_id}"
        self.agent_id = agent_id
        self.timeout = timeout
        self.session = requests.Session()

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def write(self, content: Any, **fields: Any) -> str:
        """Write a message; returns its msg_id once the node committed it locally."""
        response = self.session.post(
            f"{self.base}/messages", json={"content": content, **fields}, timeout=self.timeout
        )
        if response.status_code == 507:
            raise _cache_full(self.agent_id, response)
        if response.status_code == 400:
            raise _refusal(response)
        _check(response)
        return str(response.json()["msg_id"])

    def read(self, msg_id: str) -> MessageEnvelope | None:
        """Return a message (local cache first, then the relay), or None."""
        if not is_id(msg_id):  # it becomes part of the URL's path
            raise InvalidMessage("msg_id", ID_RULE)
        response = self.session.get(f"{self.base}/messages/{msg_id}", timeout=self.timeout)
        if response.status_code == 404:
            return None
        _check(response)
        return from_stored(response.json())

    def query(self, **filters: Any) -> list[MessageEnvelope]:
        """Return local messages matching task_id, sender, recipient, since, limit."""
        response = self.session.get(f"{self.base}/messages", params=filters, timeout=self.timeout)
        if response.status_code == 400:
            raise _refusal(response)
        _check(response)
        # As stored: a message cached under an older rule still reads.
        return [from_stored(m) for m in response.json()["messages"]]

    def status(self) -> dict[str, Any]:
        """Return this agent's cache, outbox and sync figures."""
        response = self.session.get(f"{self.base}/status", timeout=self.timeout)
        _check(response)
        result: dict[str, Any] = response.json()
        return result


def _cache_full(agent_id: str, response: requests.Response) -> CacheFull:
    """The node's CacheFull, rebuilt from its 507 answer (agent, limit and why)."""
    body = response.json()
    limit = body.get("limit_bytes")
    return CacheFull(
        str(body.get("agent_id") or agent_id),
        limit if isinstance(limit, int) else 0,
        str(body.get("detail") or body.get("error") or "cache full"),
    )


def _check(response: requests.Response) -> None:
    if response.status_code >= 300:
        raise CommanderError(f"node answered HTTP {response.status_code}: {response.text[:300]}")


def _refusal(response: requests.Response) -> InvalidMessage:
    """The node's 400 as InvalidMessage naming the field its error names ("field: reason")."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = str(body.get("error")) if isinstance(body, dict) else response.text[:300]
    field, sep, reason = error.partition(": ")
    return InvalidMessage(field, reason) if sep else InvalidMessage("request", error)
