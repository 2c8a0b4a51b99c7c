"""Who may use which route of the node's API, decided by the door a request came in by.

Doors: an agent's Unix socket (`<socket_dir>/<agent_id>.sock`, its file mode decides
who connects, and when the agent file names its `unix_user`, the peer's uid too)
reaches that agent's routes and the open ones; the admin socket
(`node.sock`, the node's user only) reaches everything; TCP reaches the open routes
(/healthz, /metrics, /openapi.json) and an agent's routes with that agent's bearer
token, never the node-wide ones. On every door, requests from web pages are refused
(an `Origin` header, `Sec-Fetch-Site` other than `none`), as is a body that is not
JSON; on TCP the Host header must name loopback (or the listen address), against
DNS rebinding.

Each route is tagged with its scope (`open`, `agent`, `node`); `DoorCheck` is the
Bottle plugin that applies the rule with the very `agent_id` the route matched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import bottle

from runtime.core.loopback import HostRule
from runtime.core.peer_cred import PEER_UID
from runtime.core.token_files import WatchedTable, token_matches, token_sha256
from runtime.core.wsgi_bridge import WsgiApp

DOOR_KEY = "commander.door"
Scope = Literal["open", "agent", "node"]
# The same answer for a missing header, an unknown agent and a wrong token.
UNAUTHORIZED = "missing or wrong 'Authorization: Bearer <token>' for this agent"
_DUMMY = token_sha256("commander-node: no such agent")
# Names the rule, not the user: a stranger learns no account worth taking over.
WRONG_PEER = (
    "this socket serves only its agent's Unix user (unix_user in the agent's file),"
    " root and the node's user"
)


class AgentTokens:
    """agent id -> sha256 of its token, from the hashes file; re-read when it changes."""

    def __init__(self, path: Path | None) -> None:
        """Read the file now (a broken file is a ConfigError; a missing one is empty)."""
        self.path = path
        self._file = WatchedTable(path, "agent_id")

    def agents(self) -> list[str]:
        """The agents that have a token now."""
        return sorted(self._file.current())

    def check(self, agent_id: str, authorization: str | None) -> bool:
        """Whether `authorization` is `Bearer <the token of agent_id>` (constant time)."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        expected = self._file.current().get(agent_id)
        ok = token_matches(token, expected, _DUMMY)
        return ok and scheme.lower() == "bearer" and bool(token)


@dataclass(frozen=True)
class Door:
    """The way a request came in: `agent` (a socket of `agent_id`), `admin`, or `tcp`."""

    kind: Literal["agent", "admin", "tcp"]
    agent_id: str | None = None
    admin_socket: str = "node.sock"
    tokens: AgentTokens | None = field(default=None, compare=False)
    hosts: HostRule = field(default_factory=HostRule)
    # The uids an agent socket serves; None: whoever the socket's mode lets connect.
    peers: frozenset[int] | None = None


def with_door(app: WsgiApp, door: Door) -> WsgiApp:
    """`app` as served by one door: each request carries the door in its environ."""

    def doorway(environ: dict[str, Any], start_response: Any) -> Any:
        environ[DOOR_KEY] = door
        return app(environ, start_response)

    return doorway


def refusal(
    door: Door | None, scope: Scope, agent_id: str | None, environ: dict[str, Any]
) -> tuple[int, str] | None:
    """(status, text) when this request may not use this route; None when it may."""
    if door is None:  # served without a door: nothing is open
        return 403, "this server has no door for the node API"
    stranger = _wrong_peer(door, environ) or _from_browser(environ) or _wrong_host(door, environ)
    if stranger:
        return 403, stranger
    denied = _scope_refusal(door, scope, agent_id, environ)
    if denied:
        return denied
    if _has_body(environ) and not _is_json(environ.get("CONTENT_TYPE", "")):
        return 415, "a request body must be Content-Type: application/json"
    return None


def _wrong_peer(door: Door, environ: dict[str, Any]) -> str | None:
    """Why the connecting process may not use this agent's socket, or None."""
    if door.peers is None or environ.get(PEER_UID) in door.peers:
        return None
    return WRONG_PEER  # also without a uid at all: a rule that cannot be checked refuses


def _wrong_host(door: Door, environ: dict[str, Any]) -> str | None:
    """Why the Host header may not reach a TCP door (DNS rebinding), or None."""
    if door.kind != "tcp" or door.hosts.allows(environ.get("HTTP_HOST")):
        return None
    return "Host must name this machine's loopback (localhost, 127.0.0.1, [::1])"


def _from_browser(environ: dict[str, Any]) -> str | None:
    """Why the request looks sent by a web page (agents are not browsers), or None."""
    if "HTTP_ORIGIN" in environ:  # also `Origin: null` (sandboxed frames, file: pages)
        return "requests with an Origin header are refused: agents are not browsers"
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None and site.strip().lower() != "none":
        return "requests with Sec-Fetch-Site other than 'none' are refused: agents are not browsers"
    return None


def _scope_refusal(
    door: Door, scope: Scope, agent_id: str | None, environ: dict[str, Any]
) -> tuple[int, str] | None:
    if scope == "open" or door.kind == "admin":
        return None
    if scope == "node":
        return 403, f"node-wide routes are served on the admin socket {door.admin_socket} only"
    if door.kind == "agent":
        if agent_id == door.agent_id:
            return None
        return 403, f"this socket serves agent {door.agent_id!r} only"
    tokens = door.tokens
    if tokens is not None and tokens.check(agent_id or "", environ.get("HTTP_AUTHORIZATION")):
        return None
    return 401, UNAUTHORIZED


def _has_body(environ: dict[str, Any]) -> bool:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) != 0  # -1: streamed, length unknown
    except ValueError:
        return True


def _is_json(content_type: str) -> bool:
    """application/json (any case), parameters allowed, a charset only if UTF-8."""
    kind, *params = (part.strip().lower() for part in content_type.split(";"))
    if kind != "application/json":
        return False
    charsets = [p.partition("=")[2].strip('"') for p in params if p.startswith("charset=")]
    return all(charset in ("utf-8", "utf8") for charset in charsets)


class DoorCheck:
    """Bottle plugin: a route's `scope` config decides, with the door, who may call it."""

    name = "door-check"
    api = 2

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        """Wrap one route's callback with the check."""
        scope: Scope = route.config.get("scope", "node")

        def checked(*args: Any, **kwargs: Any) -> Any:
            environ = bottle.request.environ
            refused = refusal(environ.get(DOOR_KEY), scope, kwargs.get("agent_id"), environ)
            if refused is not None:
                status, text = refused
                headers = {"WWW-Authenticate": 'Bearer realm="commander-node"'}
                raise bottle.HTTPError(status, text, **(headers if status == 401 else {}))
            return callback(*args, **kwargs)

        return checked
