"""The relay's HTTP API: `create_app(store, config, ingest=...)` returns a Bottle app.

Writes (`/sync/*`) are validated here, in the HTTP worker threads, and committed by the
IngestActor; they are answered only after the commit. Reads (`/query/*`, `/files/*`)
use the store's own read connections and never wait behind writes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bottle

from relay_app.auth import NODE_HEADER, TokenBook
from relay_app.diskspace import SpaceGate
from relay_app.errors import NotFound, RelayAppError, StorageFull, Unauthorized
from relay_app.files import MULTIPART_OVERHEAD, receive_file
from relay_app.http import (
    install_error_pages,
    json_response,
    parse_json,
    read_body,
    refuse_oversized,
    relay_errors,
)
from relay_app.inbox import install_inbox
from relay_app.inbox.forwarded import Proxies
from relay_app.ingest import Ingest
from relay_app.mail import MailRoom, sync_mail
from relay_app.metrics_auth import metrics_reader
from relay_app.openapi import relay_document
from relay_app.owners import AgentOwners, own_sender
from relay_app.refill import digests_answer, generation_text, ids_answer
from relay_app.store import MessageStore, StoreFile, StoreMessages, WriteOp, WriteResult
from relay_app.validate import (
    CursorAt,
    batch_request,
    check_id,
    encode_cursor,
    message_row,
    page_request,
    status_request,
)
from runtime.core.config import ClusterConfig
from runtime.core.http_query import decoded_query

# The WSGI environ key where a write leaves how many messages it newly stored, for
# relay_app.metrics (a repeat of a known msg_id stores nothing).
STORED_KEY = "commander.messages_stored"


class _Relay:
    """The state the routes share: store, writer handle, limits, tokens, disk gate."""

    def __init__(
        self, store: MessageStore, config: ClusterConfig, ingest: Ingest, gate: SpaceGate
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.settings = config.relay
        self.data_dir = Path(config.relay.data_dir)
        self.tokens = TokenBook(config)
        self.proxies = Proxies(config.relay.trusted_proxies)  # who the client is, for the log
        self.owners = AgentOwners(config)
        self.gate = gate
        # Each commit of new messages wakes the nodes' parked mail polls it concerns.
        self.mail_room = MailRoom()
        store.on_stored(self.mail_room.ring)
        # Set when SQLite last reported the database full, cleared by the next commit.
        self.db_full = False
        # Names this relay process: a node that sees it change knows the relay restarted,
        # perhaps on a database rolled back under it, and compares what it holds.
        self.instance = secrets.token_hex(8)

    def node(self) -> str:
        """Authenticate the request; return its node id."""
        environ = bottle.request.environ
        return self.tokens.authenticate(
            environ.get(NODE_HEADER),
            environ.get("HTTP_AUTHORIZATION"),
            peer=self.proxies.client(environ),
        )

    def reader(self, agent_id: str) -> str:
        """Authenticate the request as the node that owns `agent_id`; return its id."""
        node_id = self.node()
        self.owners.check(node_id, agent_id, "agent")
        return node_id

    def insider(self) -> bool:
        """Whether the request carries a valid node token or the metrics token."""
        environ = bottle.request.environ
        if metrics_reader(environ, self.settings):
            return True
        if not environ.get(NODE_HEADER):
            return False
        try:
            self.node()
        except Unauthorized:
            return False
        return True

    def body(self) -> Any:
        """Read and parse the JSON body within relay.max_body_bytes."""
        return parse_json(read_body(bottle.request.environ, self.settings.max_body_bytes))

    def commit(self, op: WriteOp) -> WriteResult:
        """Hand a write to the IngestActor and wait for its commit."""
        try:
            result = self.ingest.submit(op)
        except StorageFull:
            self.db_full = True
            raise
        self.db_full = False
        if isinstance(op, StoreMessages):
            bottle.request.environ[STORED_KEY] = result.inserted
        return result


def create_app(
    store: MessageStore,
    config: ClusterConfig,
    *,
    ingest: Ingest,
    gate: SpaceGate | None = None,
) -> bottle.Bottle:
    """Build the relay's Bottle app over `store`, writing through `ingest`, guarded by `gate`."""
    # One free-space gate for the node API, the file door and the inbox's actions alike.
    gate = gate or SpaceGate.of(config.relay)
    relay = _Relay(store, config, ingest, gate)
    app = bottle.Bottle()
    app.config["json.enable"] = False  # every route returns bytes it encoded itself
    app.install(relay_errors)
    cap = max(config.relay.max_body_bytes, config.relay.max_file_bytes + MULTIPART_OVERHEAD)
    app.add_hook("before_request", refuse_oversized(cap))
    install_error_pages(app)
    for method, path, handler in _routes(relay):
        app.route(path, method, handler)
    install_inbox(app, store, config, ingest, gate=gate)  # /messages for operators
    return app


def _routes(relay: _Relay) -> list[tuple[str, str, Callable[..., Any]]]:
    return [
        ("POST", "/sync/message", lambda: _sync_message(relay)),
        ("POST", "/sync/messages", lambda: _sync_messages(relay)),
        ("POST", "/sync/status", lambda: _sync_status(relay)),
        ("POST", "/sync/files", lambda: _sync_files(relay)),
        ("GET", "/query/messages", lambda: _query_messages(relay)),
        ("GET", "/sync/mail", lambda: _sync_mail(relay)),
        ("GET", "/sync/digests", lambda: digests_answer(relay.store.refill, relay.reader)),
        ("GET", "/sync/ids", lambda: ids_answer(relay.store.refill, relay.reader)),
        ("GET", "/query/messages/<msg_id>", lambda msg_id: _get_message(relay, msg_id)),
        ("GET", "/query/status", lambda: _query_status(relay)),
        ("GET", "/files/<file_id>", lambda file_id: _get_file(relay, file_id)),
        ("GET", "/healthz", lambda: _healthz(relay)),
        ("GET", "/openapi.json", lambda: json_response(relay_document(relay.settings))),
    ]


def _sync_message(relay: _Relay) -> bottle.HTTPResponse:
    node_id = relay.node()
    relay.gate.check()
    row = message_row(relay.body(), node_id)
    relay.owners.check(node_id, row.agent_id, "message.agent_id")
    own_sender(row, "message")
    relay.commit(StoreMessages(node_id=node_id, rows=(row,)))
    return json_response({"status": "stored", "msg_id": row.msg_id})


def _sync_messages(relay: _Relay) -> bottle.HTTPResponse:
    node_id = relay.node()
    relay.gate.check()
    op = batch_request(relay.body(), node_id, relay.settings.max_batch_messages)
    # A node's batch holds one agent's messages, but nothing makes it: check each.
    for i, row in enumerate(op.rows):
        relay.owners.check(node_id, row.agent_id, f"messages[{i}].agent_id")
        own_sender(row, f"messages[{i}]")
    relay.commit(op)
    return json_response({"status": "acked", "batch_id": op.batch_id})


def _sync_status(relay: _Relay) -> bottle.HTTPResponse:
    node_id = relay.node()
    relay.gate.check()
    op = status_request(relay.body(), node_id)
    for i, agent in enumerate(op.agents):
        relay.owners.check(node_id, agent["agent_id"], f"agents[{i}].agent_id")
    relay.commit(op)
    return json_response({"status": "stored", "node_id": node_id})


def _sync_files(relay: _Relay) -> bottle.HTTPResponse:
    node_id = relay.node()
    record = receive_file(
        bottle.request.environ,
        data_dir=relay.data_dir,
        node_id=node_id,
        max_file_bytes=relay.settings.max_file_bytes,
        gate=relay.gate,
        check_agent=lambda agent_id: relay.owners.check(node_id, agent_id, "agent_id"),
    )
    try:
        relay.commit(StoreFile(record))
    except BaseException:
        # Not in the database means not stored: leave no orphan on disk.
        (relay.data_dir / record.path).unlink(missing_ok=True)
        raise
    return json_response(
        {"status": "stored", "file_id": record.file_id, "sha256": record.sha256,
         "size": record.size}
    )  # fmt: skip


def _sync_mail(relay: _Relay) -> bottle.HTTPResponse | bytes:
    node_id = relay.node()
    return sync_mail(node_id, relay.store, relay.mail_room, relay.owners.may_receive)


def _query_messages(relay: _Relay) -> bottle.HTTPResponse:
    relay.node()
    request = page_request(decoded_query(bottle.request).dict)
    page = relay.store.query_messages(request.query)
    cursor = None
    if page.has_more and page.last_id is not None:
        at = CursorAt(page.last_id, page.last_ts, request.query.descending, request.page + 1)
        cursor = encode_cursor(at)
    return json_response(
        {"messages": page.messages, "total": page.total, "page": request.page, "next": cursor}
    )


def _get_message(relay: _Relay, msg_id: str) -> bottle.HTTPResponse:
    relay.node()
    message = relay.store.get_message(check_id("msg_id", msg_id))
    if message is None:
        raise NotFound(f"no message with msg_id {msg_id!r}")
    return json_response(message)


def _query_status(relay: _Relay) -> bottle.HTTPResponse:
    relay.node()
    return json_response({"nodes": relay.store.node_statuses()})


def _get_file(relay: _Relay, file_id: str) -> bottle.HTTPResponse:
    relay.node()
    record = relay.store.get_file(check_id("file_id", file_id))
    if record is None:
        raise NotFound(f"no file with file_id {file_id!r}")
    path = relay.data_dir / record.path
    response = bottle.static_file(
        path.name, root=str(path.parent), mimetype="application/octet-stream"
    )
    if response.status_code == 404:
        raise NotFound(f"file {file_id!r} is recorded but its content is missing")
    response.set_header("Content-Disposition", _attachment(record.filename or record.file_id))
    # Uploaded bytes are never rendered by a browser on the relay's origin.
    response.set_header("X-Content-Type-Options", "nosniff")
    response.set_header("X-Checksum-Sha256", record.sha256)
    return response


def _attachment(filename: str) -> str:
    """Content-Disposition for any file name: an ASCII fallback plus RFC 5987 UTF-8."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in filename)  # fmt: skip
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _healthz(relay: _Relay) -> bottle.HTTPResponse:
    """200 `ok` or 503 `refusing` (writes); the figures only to a node or metrics token."""
    free = relay.gate.free()
    refusing = _refusing(relay, free)
    terse = {"status": "ok" if refusing is None else "refusing"}
    status = 200 if refusing is None else 503
    if not relay.insider():
        return json_response(terse, status)
    return json_response(
        {
            **terse,
            "writes_accepted": refusing is None,
            "refusing": refusing,
            "free_bytes": free,
            "min_free_bytes": relay.gate.floor,
            "database_full": relay.db_full,
            "archive_damaged_segments": _damaged(relay),
            "generation": _generation(relay),
            "instance": relay.instance,
            "time": time.time(),
        },
        status,
    )


def _generation(relay: _Relay) -> str | None:
    """The corpus's generation; None when the store cannot be read."""
    try:
        return generation_text(relay.store.refill)
    except RelayAppError:
        return None


def _damaged(relay: _Relay) -> list[str] | None:
    """The archive segments found damaged; None when the store cannot say."""
    try:
        return list(relay.store.figures().damaged_segments)
    except RelayAppError:
        return None


def _refusing(relay: _Relay, free: int) -> str | None:
    """Why writes are refused right now ("writer_stopped", "database_full", "disk_floor")."""
    if not relay.ingest.alive:
        return "writer_stopped"
    if relay.db_full:
        return "database_full"
    if free < relay.gate.floor:
        return "disk_floor"
    return None
