"""The node's mail routes: an agent receives the messages addressed to it (agent scope).

GET  /agents/<agent_id>/inbox?after=&wait=&limit=   acknowledge up to `after`, then the
     agent's mail past what it acknowledged, oldest first, waiting up to `wait` seconds
     (parked on the front's loop, runtime.core.park: a waiting agent holds no worker)
POST /agents/<agent_id>/inbox/ack {"cursor": N}       acknowledge without asking for more

The answer is `{"messages": [...], "cursor": N}`; pass the cursor as `after` next time.
The node keeps each agent's acknowledged cursor durably (runtime.node.mail_store): delivery
is at-least-once, with the msg_id to drop a repeat.
"""

from __future__ import annotations

from typing import Any

import bottle
import orjson

from runtime.core.http_query import decoded_query
from runtime.core.relay_client import strip_relay_fields
from runtime.node.mail_store import next_mail
from runtime.node.node import Node

MAX_WAIT = 60.0
MAX_MAIL = 1000
DEFAULT_MAIL = 100
MAX_CURSOR = 2**62


def install_mail_routes(app: bottle.Bottle, node: Node) -> None:
    """Add the inbox routes to the node's app (agent scope, runtime.node.doors)."""
    app.route(
        "/agents/<agent_id>/inbox", "GET", lambda agent_id: _inbox(node, agent_id), scope="agent"
    )
    app.route(
        "/agents/<agent_id>/inbox/ack", "POST", lambda agent_id: _ack(node, agent_id), scope="agent"
    )


def _inbox(node: Node, agent_id: str) -> bytes:
    agent, mail = _agent_mail(node, agent_id)
    params = decoded_query(bottle.request).dict
    unknown = sorted(set(params) - {"after", "wait", "limit"})
    if unknown:
        raise bottle.HTTPError(400, f"{unknown[0][:64]}: unknown query parameter")
    after = _number(params, "after", MAX_CURSOR)
    wait = _number(params, "wait", MAX_WAIT) or 0.0
    limit = int(_number(params, "limit", MAX_MAIL) or DEFAULT_MAIL)
    environ = bottle.request.environ
    found = next_mail(mail, agent, environ, wait, limit, None if after is None else int(after))
    if found is None:
        return b""  # parked: the front asks again when new mail is stored
    cursor = found[-1][0] if found else mail.acked(agent_id)
    messages = [strip_relay_fields(message) for _, message in found]
    return _json({"messages": messages, "cursor": cursor})


def _ack(node: Node, agent_id: str) -> bytes:
    _, mail = _agent_mail(node, agent_id)
    try:
        data = orjson.loads(bottle.request.environ["wsgi.input"].read(4096))
    except (orjson.JSONDecodeError, OSError):
        data = None
    cursor = data.get("cursor") if isinstance(data, dict) else None
    if not isinstance(cursor, int) or isinstance(cursor, bool) or not 0 <= cursor <= MAX_CURSOR:
        raise bottle.HTTPError(400, f'cursor: expected {{"cursor": 0..{MAX_CURSOR}}}')
    mail.ack(agent_id, cursor)
    return _json({"cursor": mail.acked(agent_id)})


def _agent_mail(node: Node, agent_id: str) -> tuple[Any, Any]:
    if agent_id not in node.agents:
        raise bottle.HTTPError(404, f"agent {agent_id!r} is not configured on node {node.node_id}")
    if node.mail is None:
        raise bottle.HTTPError(503, "the node's mail store is not open")
    return node.agents[agent_id].config, node.mail


def _number(params: dict[str, list[str]], name: str, top: float) -> float | None:
    values = params.get(name) or []
    if not values:
        return None
    raw = values[0]
    try:
        value = float(raw) if name == "wait" else int(raw)
    except ValueError:
        value = -1
    if len(values) > 1 or not raw.isascii() or len(raw) > 20 or not 0 <= value <= top:
        raise bottle.HTTPError(400, f"{name}: expected one number from 0 to {top:g}")
    return value


def _json(data: Any) -> bytes:
    bottle.response.content_type = "application/json"
    return orjson.dumps(data)
