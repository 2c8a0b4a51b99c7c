"""Turn decoded request JSON and query strings into store requests, or say what is wrong."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from relay_app.errors import BadRequest, Forbidden, PayloadTooLarge
from relay_app.store import (
    FILTER_FIELDS,
    MESSAGE_STATUSES,
    MessageQuery,
    MessageRow,
    StoreMessages,
    StoreStatus,
)
from runtime.core.envelope import FORBIDDEN_TEXT, PRIORITIES, MessageEnvelope, encode_json
from runtime.core.errors import InvalidMessage
from runtime.core.ids import ID_RULE, is_id
from runtime.core.wire import BATCH_FIELDS

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_FILTER_VALUES = 50
MAX_STATUS_AGENTS = 1000
MAX_STATUS_FIELDS = 32
MAX_PARAM_CHARS = 256
# SQLite's INTEGER range: a larger number bound into a query raises OverflowError.
SQL_INT_MIN = -(2**63)
SQL_INT_MAX = 2**63 - 1
MAX_PAGE = 10**12
RANGE_LIMIT_S = 1e12  # bound on since/until of refill's reads
AGENT_NUMBERS = (
    "cache_bytes_used",
    "cache_max_bytes",
    "outbox_depth",
    "failed_batches",
    "oldest_unsynced_age_s",
    "last_sync_at",
)


def check_id(name: str, value: Any) -> str:
    """Return `value` if it is a valid id (safe in paths and URLs); 400 otherwise."""
    if not is_id(value):
        raise BadRequest(f"{name}: {ID_RULE}")
    return str(value)


def message_row(data: Any, node_id: str, where: str = "message") -> MessageRow:
    """Validate one wire message sent by `node_id`; 400 if malformed, 403 if not its own."""
    try:
        env, content_json = MessageEnvelope.from_wire_json(data)
    except InvalidMessage as exc:
        raise BadRequest(f"{where}.{exc.field}: {exc.reason}") from exc
    if env.node_id != node_id:
        raise Forbidden(
            f"{where}.node_id: {env.node_id!r} is not {node_id!r}, the node this request is"
            " authenticated as; a node may only store its own messages"
        )
    return MessageRow(
        env.msg_id,
        float(env.timestamp),
        env.task_id,
        env.sender,
        env.recipient,
        env.role,
        encode_json(content_json),
        env.node_id,
        env.agent_id,
        env.priority,
    )


def batch_request(data: Any, node_id: str, max_messages: int) -> StoreMessages:
    """Validate `{"batch_id", "node_id", "messages": [...]}` sent by `node_id`."""
    if not isinstance(data, dict):
        raise BadRequest('body: expected a JSON object {"batch_id", "node_id", "messages"}')
    unknown = sorted(str(key) for key in data if key not in BATCH_FIELDS)
    if unknown:
        raise BadRequest(
            f"{unknown[0][:64]}: unknown field; a batch has only {', '.join(BATCH_FIELDS)}"
        )
    batch_id = check_id("batch_id", data.get("batch_id"))
    own_node(check_id("node_id", data.get("node_id")), node_id, "node_id")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: expected a non-empty list of messages")
    if len(messages) > max_messages:
        raise PayloadTooLarge(
            f"messages: {len(messages)} in one batch; the limit is {max_messages}"
        )
    rows = tuple(message_row(m, node_id, f"messages[{i}]") for i, m in enumerate(messages))
    return StoreMessages(node_id=node_id, rows=rows, batch_id=batch_id)


def own_node(claimed: str, node_id: str, where: str) -> None:
    """403 unless the node named in the body is the authenticated node."""
    if claimed != node_id:
        raise Forbidden(
            f"{where}: {claimed!r} is not {node_id!r}, the node this request is authenticated as"
        )


def status_request(data: Any, node_id: str) -> StoreStatus:
    """Validate a node health report `{"node_id", "sent_at", "agents": [...]}`."""
    if not isinstance(data, dict):
        raise BadRequest('body: expected a JSON object {"node_id", "sent_at", "agents"}')
    own_node(check_id("node_id", data.get("node_id")), node_id, "node_id")
    sent_at = _number_or_none("sent_at", data.get("sent_at"))
    agents = data.get("agents", [])
    if not isinstance(agents, list) or len(agents) > MAX_STATUS_AGENTS:
        raise BadRequest(f"agents: expected a list of at most {MAX_STATUS_AGENTS} objects")
    return StoreStatus(
        node_id=node_id,
        sent_at=sent_at,
        agents=tuple(_agent_status(a, f"agents[{i}]") for i, a in enumerate(agents)),
    )


def _agent_status(data: Any, where: str) -> dict[str, Any]:
    """Check the known fields of one agent's report (numbers, or null when unknown) and keep
    any further flat fields a newer node sends (`cache_full`, ...) if they are small scalars."""
    if not isinstance(data, dict) or len(data) > MAX_STATUS_FIELDS:
        raise BadRequest(f"{where}: expected a JSON object of at most {MAX_STATUS_FIELDS} fields")
    report: dict[str, Any] = {"agent_id": check_id(f"{where}.agent_id", data.get("agent_id"))}
    for key in AGENT_NUMBERS:
        report[key] = _number_or_none(f"{where}.{key}", data.get(key))
    for key, value in data.items():
        if key in report:
            continue
        check_id(f"{where} field name", key)
        if not _small_scalar(value):
            raise BadRequest(f"{where}.{key}: expected a number, boolean, null or short string")
        report[key] = value
    return report


def _small_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= MAX_PARAM_CHARS and FORBIDDEN_TEXT.search(value) is None
    return value is None or isinstance(value, bool | int)


def _number_or_none(name: str, value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"{name}: expected a finite number or null")
    if isinstance(value, int) and not SQL_INT_MIN <= value <= SQL_INT_MAX:
        raise BadRequest(f"{name}: integer outside {SQL_INT_MIN}..{SQL_INT_MAX}")
    return value


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A parsed GET /query/messages: the store query and the page number it answers."""

    query: MessageQuery
    page: int


def page_request(params: Mapping[str, Sequence[str]]) -> PageRequest:
    """Parse the query string of GET /query/messages (every value is a list of strings)."""
    unknown = sorted(set(params) - {*FILTER_FIELDS, "since", "until", "limit", "page",
                                    "order", "next", "archived"})  # fmt: skip
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}")
    filters = tuple(
        (column, _filter_values(name, params[name]))
        for name, column in FILTER_FIELDS.items()
        if name in params
    )
    limit = min(_int_param(params, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    cursor = _single(params, "next")
    base = MessageQuery(
        filters=filters,
        since=_float_param(params, "since"),
        until=_float_param(params, "until"),
        limit=limit,
        archived=_archived_param(params),
    )
    if cursor is not None:
        at = decode_cursor(cursor)
        moved = _with(base, after_id=at.last_id, after_ts=at.last_ts, descending=at.descending)
        return PageRequest(moved, at.page)
    page = _int_param(params, "page", 1)
    if base.archived and page > 1:
        raise BadRequest("page: with archived=include, pages follow `next` only")
    order = _single(params, "order")
    order = "desc" if order is None else order  # `order=` (empty) is refused, not a default
    if order not in ("asc", "desc"):
        raise BadRequest("order: expected 'asc' or 'desc'")
    query = _with(base, offset=(page - 1) * limit, descending=order == "desc")
    return PageRequest(query, page)


def _with(base: MessageQuery, **changes: Any) -> MessageQuery:
    fields = {name: getattr(base, name) for name in MessageQuery.__slots__}
    return MessageQuery(**{**fields, **changes})


def _archived_param(params: Mapping[str, Sequence[str]]) -> bool:
    value = _single(params, "archived")
    if value not in (None, "exclude", "include"):
        raise BadRequest("archived: expected 'include' or 'exclude'")
    return value == "include"


def _filter_values(name: str, values: Sequence[str]) -> tuple[str, ...]:
    if len(values) > MAX_FILTER_VALUES:
        raise BadRequest(f"{name}: at most {MAX_FILTER_VALUES} values")
    for value in values:
        if not value or len(value) > MAX_PARAM_CHARS or "\x00" in value:
            raise BadRequest(f"{name}: expected 1-{MAX_PARAM_CHARS} characters and no NUL")
    if name == "priority" and not set(values) <= set(PRIORITIES):
        raise BadRequest(f"priority: expected one of {', '.join(PRIORITIES)}")
    if name == "status" and not set(values) <= set(MESSAGE_STATUSES):
        raise BadRequest(f"status: expected one of {', '.join(MESSAGE_STATUSES)}")
    return tuple(values)


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name}: expected one value")
    return values[0]


def _int_param(params: Mapping[str, Sequence[str]], name: str, default: int) -> int:
    raw = _single(params, name)
    if raw is None:
        return default
    # isdigit() alone admits "²", which int() refuses: ASCII digits only.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or int(raw) < 1:
        raise BadRequest(f"{name}: expected a positive integer")
    return int(raw)


def _float_param(params: Mapping[str, Sequence[str]], name: str) -> float | None:
    raw = _single(params, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadRequest(f"{name}: expected a timestamp in seconds since the epoch")
    return value


@dataclass(frozen=True, slots=True)
class CursorAt:
    """Where a page ended (its last row's id and, in newer cursors, report time), its
    order and the next page's number."""

    last_id: int
    last_ts: float | None
    descending: bool
    page: int


def encode_cursor(at: CursorAt) -> str:
    """An opaque keyset cursor."""
    raw = orjson.dumps({"i": at.last_id, "t": at.last_ts, "d": at.descending, "p": at.page})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> CursorAt:
    """Inverse of `encode_cursor`; 400 for anything this relay did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
        last_id, descending, page = data["i"], data["d"], data["p"]
        last_ts = data.get("t")
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadRequest("next: not a cursor returned by this relay") from exc
    valid = (
        type(last_id) is int
        and SQL_INT_MIN <= last_id <= SQL_INT_MAX
        and isinstance(descending, bool)
        and type(page) is int
        and 1 <= page <= MAX_PAGE
        and (last_ts is None or (type(last_ts) in (int, float) and math.isfinite(last_ts)))
    )
    if not valid:
        raise BadRequest("next: not a cursor returned by this relay")
    return CursorAt(last_id, None if last_ts is None else float(last_ts), descending, page)


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """GET /sync/digests and /sync/ids: one agent's messages from `since` (to `until`)."""

    agent_id: str
    since: float
    until: float
    after: str


def ids_request(params: Mapping[str, Sequence[str]], widest: float) -> RangeRequest:
    """range_request, with since and until required and at most `widest` seconds apart:
    an id list is read per hour, and a wider one would sort an agent's whole history."""
    request = range_request(params)
    if not 0 < request.until - request.since <= widest:
        raise BadRequest(f"since, until: required, until after since by at most {widest:g} s")
    return request


def range_request(params: Mapping[str, Sequence[str]]) -> RangeRequest:
    """Read agent, since, until and after; 400 on anything malformed."""
    agent = _single(params, "agent")
    if agent is None:
        raise BadRequest("agent: required")
    since = _bounded_time(params, "since")
    until = _bounded_time(params, "until")
    after = _single(params, "after") or ""
    if after:
        check_id("after", after)
    return RangeRequest(
        check_id("agent", agent),
        -math.inf if since is None else since,
        math.inf if until is None else until,
        after,
    )


def _bounded_time(params: Mapping[str, Sequence[str]], name: str) -> float | None:
    """A report time within RANGE_LIMIT_S of the epoch: far beyond any stored message,
    and far from where hour arithmetic on a float would overflow."""
    value = _float_param(params, name)
    if value is not None and abs(value) > RANGE_LIMIT_S:
        raise BadRequest(f"{name}: expected seconds since the epoch within ±{RANGE_LIMIT_S:.0e}")
    return value
