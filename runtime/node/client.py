"""Clients of the node's API, for agents in other processes: NodeClient, and NodeAdmin.

An address is either a Unix socket, the default way in (`unix:/run/commander-node`,
the node's socket directory, or `unix:/path/to/AGENT.sock`; a bare path works too),
or loopback TCP (`http://127.0.0.1:8002`), where every call carries the agent's token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from runtime.core.envelope import MessageEnvelope, from_stored
from runtime.core.errors import CacheFull, CommanderError, InvalidMessage
from runtime.core.ids import ID_RULE, is_id
from runtime.node.query_filters import check_filter_names
from runtime.node.unix_http import BASE_URL, unix_session

ADMIN_SOCKET = "node.sock"


class NodeClient:
    """Writes, reads and queries one agent's cache through `commander-node`'s API."""

    def __init__(
        self, address: str, agent_id: str, *, token: str | None = None, timeout: float = 10.0
    ) -> None:
        """`address`: see the module docstring; `token` is required over TCP."""
        if not is_id(agent_id):  # it becomes part of every URL's path
            raise InvalidMessage("agent_id", ID_RULE)
        root, self.session = _connect(address, f"{agent_id}.sock")
        if root != BASE_URL:
            if not token:
                raise CommanderError(f"{address}: over TCP the node needs the agent's token")
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.base = f"{root}/agents/{agent_id}"
        self.agent_id = agent_id
        self.timeout = timeout
        # The cursor of the last batch `receive` returned: the next call acknowledges it.
        self.cursor: int | None = None

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
        """Return local messages matching task_id, sender, recipient, since, limit.

        An unknown filter raises InvalidMessage naming it, before anything is sent.
        """
        check_filter_names(filters)
        response = self.session.get(f"{self.base}/messages", params=filters, timeout=self.timeout)
        if response.status_code == 400:
            raise _refusal(response)
        _check(response)
        # As stored: a message cached under an older rule still reads.
        return [from_stored(m) for m in response.json()["messages"]]

    def receive(self, timeout: float = 0.0, *, limit: int = 100) -> list[MessageEnvelope]:
        """Messages to this agent (recipient = its id or its role) from any node, oldest first,
        waiting up to `timeout` seconds for some; [] when none came.

        Asking again acknowledges the previous batch (as does `ack`); the node keeps that
        cursor durably, so its restart neither loses nor repeats a message. Delivery is
        at-least-once: a batch this client got but never acknowledged (it crashed) is
        handed out again, so drop repeats by msg_id.
        """
        params: dict[str, Any] = {"wait": timeout, "limit": limit}
        if self.cursor is not None:
            params["after"] = self.cursor
        response = self.session.get(
            f"{self.base}/inbox", params=params, timeout=timeout + self.timeout
        )
        _check(response)
        data = response.json()
        self.cursor = int(data["cursor"])
        return [from_stored(m) for m in data["messages"]]

    def ack(self) -> None:
        """Acknowledge the last batch `receive` returned, without asking for more."""
        if self.cursor is None:
            return
        response = self.session.post(
            f"{self.base}/inbox/ack", json={"cursor": self.cursor}, timeout=self.timeout
        )
        _check(response)

    def status(self) -> dict[str, Any]:
        """Return this agent's cache, outbox and sync figures."""
        response = self.session.get(f"{self.base}/status", timeout=self.timeout)
        _check(response)
        result: dict[str, Any] = response.json()
        return result


class NodeAdmin:
    """The node-wide routes (/status, /outbox/retry-failed), through node.sock only."""

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        """`address`: the node's socket directory (or node.sock), as for NodeClient."""
        root, self.session = _connect(address, ADMIN_SOCKET)
        if root != BASE_URL:
            raise CommanderError(f"{address}: node-wide routes are served on node.sock only")
        self.timeout = timeout

    def status(self) -> dict[str, Any]:
        """Every agent's cache, outbox and sync figures."""
        return self._call("GET", "/status")

    def retry_failed(self) -> dict[str, Any]:
        """Move every failed batch back to pending; returns the counts per agent."""
        return self._call("POST", "/outbox/retry-failed")

    def _call(self, method: str, path: str) -> dict[str, Any]:
        try:
            response = self.session.request(method, BASE_URL + path, timeout=self.timeout)
        except requests.ConnectionError as exc:
            raise CommanderError(f"cannot reach the node: {exc}") from exc
        _check(response)
        result: dict[str, Any] = response.json()
        return result


def _connect(address: str, socket_name: str) -> tuple[str, requests.Session]:
    """The base URL and session for an address (see the module docstring)."""
    if address.startswith(("http://", "https://")):
        session = requests.Session()
        session.trust_env = False  # never a proxy: the token goes to the node only
        return address.rstrip("/"), session
    path = Path(address.removeprefix("unix:"))
    if path.suffix != ".sock":
        path = path / socket_name
    return BASE_URL, unix_session(str(path))


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
