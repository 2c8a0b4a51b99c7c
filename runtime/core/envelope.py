"""The message envelope every layer passes around, its one rule, and its codec.

`content` is any JSON value; on disk it is stored as gzip-compressed orjson
(`encode_content`/`decode_content`). On the wire (relay HTTP API) the envelope
is a JSON object with `content` as plain JSON (`to_wire`/`from_wire`).

The rule (the constants below) is checked at every door a message enters by: the
node's HTTP agent API, the in-process agent API, the relay's single and batch
writes. Every later stage must round-trip whatever a door accepted: the outbox's
batch and the relay's responses wrap content a few levels deeper, any accepted
message fits one relay request, and every accepted timestamp renders as a date.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson

from runtime.core.errors import InvalidMessage
from runtime.core.ids import ID_RULE, is_id

PRIORITIES = ("low", "normal", "high", "critical")
DEFAULT_PRIORITY = "normal"

# Text fields of the envelope (task_id, sender, recipient, role), in characters.
MAX_TEXT = 256
TEXT_FIELDS = ("task_id", "sender", "recipient", "role")
# Text fields end up in log lines, HTTP headers and HTML: no C0/C1 controls, no
# line or paragraph separators, no lone surrogates (not encodable as UTF-8).
FORBIDDEN_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

# Content nesting: arrays and objects inside each other. orjson stops at 255 levels;
# the outbox batch, the relay's page and an execute follow-up each add a few, so the
# rule keeps far below it.
MAX_DEPTH = 64
# Content as compact UTF-8 JSON. With the envelope's other fields it stays under
# MAX_WIRE_BYTES, so any accepted message fits one relay request on its own.
MAX_CONTENT_BYTES = 1024 * 1024
# Every other field of an envelope, JSON-encoded, stays under this many bytes.
ENVELOPE_OVERHEAD_BYTES = 16 * 1024
MAX_WIRE_BYTES = MAX_CONTENT_BYTES + ENVELOPE_OVERHEAD_BYTES
# A batch's uncompressed JSON body stays under this; the relay's max_body_bytes must not
# be smaller (the relay checks its limit after decompressing).
MAX_BATCH_BYTES = 4 * MAX_WIRE_BYTES
# Integers as orjson encodes them (64-bit). A larger Python int is refused rather than
# turned into a float, which would silently change the value. On the wire a JSON number
# past this range is parsed as a float by every door alike, and stays that float.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
# A fixed window, the same at every node and at the relay whatever their clocks say, so
# a message a node accepted is never refused by the relay; it also catches milliseconds
# sent as seconds (1.7e12) and a clock reset to 1970.
TIMESTAMP_MIN = 946_684_800.0  # 2000-01-01T00:00:00Z
TIMESTAMP_MAX = 4_102_444_800.0  # 2100-01-01T00:00:00Z, exclusive
TIMESTAMP_RULE = "expected seconds since the epoch from 2000-01-01 to 2100-01-01 UTC"

REQUIRED_FIELDS = ("msg_id", "timestamp", "agent_id", "node_id", "content")
WIRE_FIELDS = (*REQUIRED_FIELDS, *TEXT_FIELDS, "priority")
# gzip level 1: tiny messages compress nearly as well, at a fraction of the CPU.
GZIP_LEVEL = 1
MAX_DECODED_CONTENT = 16 * 1024 * 1024


def new_msg_id(now: float | None = None) -> str:
    """Return a UUIDv7 string: time-ordered, so primary-key indexes stay compact."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def encode_content(content: Any) -> bytes:
    """Serialize content to gzip-compressed JSON bytes."""
    return encode_json(orjson.dumps(content))


def encode_json(raw: bytes) -> bytes:
    """Compress already-serialised JSON content the way `encode_content` does."""
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def decode_json(blob: bytes) -> bytes:
    """The JSON bytes of stored content, not parsed; refuses to inflate past a safe size."""
    inflater = zlib.decompressobj(wbits=31)
    raw = inflater.decompress(blob, MAX_DECODED_CONTENT)
    if inflater.unconsumed_tail:
        raise InvalidMessage("content", "decompressed content exceeds 16 MiB")
    return raw


def decode_content(blob: bytes) -> Any:
    """Inverse of `encode_content`; refuses to inflate past a safe size."""
    return orjson.loads(decode_json(blob))


def check_content(content: Any) -> tuple[Any, bytes]:
    """Apply the rule to content; return it canonical (tuples as lists) and its JSON bytes."""
    try:
        canonical = _walk(content, 1)
    except _Refusal as exc:
        raise InvalidMessage("content", exc.reason + exc.where()) from None
    try:
        # The walk refused every key that is not a str: what is left is a str subclass.
        option = 0 if canonical else orjson.OPT_NON_STR_KEYS
        raw = orjson.dumps(content, default=_encode_plain, option=option)
    except orjson.JSONEncodeError as exc:  # lone surrogates: not encodable as UTF-8
        raise InvalidMessage("content", str(exc)) from None
    if len(raw) > MAX_CONTENT_BYTES:
        raise InvalidMessage(
            "content", f"{len(raw)} bytes of JSON; the limit is {MAX_CONTENT_BYTES}"
        )
    return (content if canonical else orjson.loads(raw)), raw


class _Refusal(Exception):
    """Raised inside the content walk; `path` collects the location as it unwinds."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path: list[str] = []

    def where(self) -> str:
        """Where in the content, as ' (at [..][..])' cut near 100 characters; '' at the top."""
        where = ""
        for part in reversed(self.path):
            if len(where) + len(part) > 100:
                where += "…"
                break
            where += part
        return f" (at {where})" if where else ""


def _walk(value: Any, depth: int) -> bool:
    """Check one value; True when it is already plain JSON (no tuple, no subclass)."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise _Refusal("NaN and infinite numbers are not JSON")
        return True
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise _Refusal(f"integer outside the 64-bit range {INT_MIN}..{INT_MAX}")
        return True
    if kind in (str, bool, type(None)):
        return True
    if isinstance(value, dict | list | tuple):
        if depth > MAX_DEPTH:
            raise _Refusal(f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            return _walk_object(value, depth) and kind is dict
        return _walk_items(enumerate(value), depth) and kind is list
    plain = _plain(value)  # a subclass (IntEnum, ...) is stored as its plain value
    if plain is None:
        raise _Refusal(f"{kind.__name__} is not a JSON value")
    _walk(plain, depth)
    return False


def _plain(value: Any) -> int | float | str | None:
    """The plain int, float or str a subclass instance stands for; None for anything else."""
    for base in (int, float, str):
        if isinstance(value, base):
            return base(value)
    return None


def _encode_plain(value: Any) -> Any:
    """orjson's `default`: what orjson does not encode itself (a float subclass)."""
    plain = _plain(value)
    if plain is None:
        raise TypeError(f"{type(value).__name__} is not a JSON value")
    return plain


def _walk_object(value: dict[Any, Any], depth: int) -> bool:
    keys_plain = True

    def checked() -> Iterator[tuple[str, Any]]:
        """The items in order, each key refused as it is reached if it is not a string."""
        nonlocal keys_plain
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Refusal(f"object key {key!r} is not a string")
            keys_plain = keys_plain and type(key) is str
            yield key, item

    return _walk_items(checked(), depth) and keys_plain


def _walk_items(items: Iterable[tuple[str | int, Any]], depth: int) -> bool:
    """Walk an object's or array's items; a refusal names the key or index it came from."""
    plain = True
    for where, item in items:
        try:
            plain = _walk(item, depth + 1) and plain
        except _Refusal as exc:
            exc.path.append(f"[{where[:40]!r}]" if isinstance(where, str) else f"[{where}]")
            raise
    return plain


@dataclass(frozen=True, slots=True)
class MessageEnvelope:
    """One agent message, immutable from the moment it is created."""

    msg_id: str
    timestamp: float
    agent_id: str
    node_id: str
    content: Any
    task_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    role: str | None = None
    priority: str = DEFAULT_PRIORITY

    @classmethod
    def new(
        cls,
        *,
        agent_id: str,
        node_id: str,
        content: Any,
        clock: Callable[[], float] = time.time,
        msg_id: str | None = None,
        **fields: Any,
    ) -> MessageEnvelope:
        """Create a message with a fresh (or the given) msg_id and the clock's time, checked."""
        unknown = sorted(set(fields) - {*TEXT_FIELDS, "priority"})
        if unknown:
            name = unknown[0]
            reason = "set by the node" if name in WIRE_FIELDS else _unknown_field_reason()
            raise InvalidMessage(name, reason)
        now = clock()
        fields.setdefault("sender", agent_id)
        env = cls(
            msg_id=new_msg_id(now) if msg_id is None else msg_id,
            timestamp=now,
            agent_id=agent_id,
            node_id=node_id,
            content=content,
            **fields,
        )
        return env.checked()

    def checked(self) -> MessageEnvelope:
        """Apply the rule; return this envelope with its content canonical (tuples as lists).

        Raises InvalidMessage naming the first field that breaks the rule.
        """
        return self.checked_json()[0]

    def checked_json(self) -> tuple[MessageEnvelope, bytes]:
        """Like `checked`, also returning the content's JSON (what its size was measured on)."""
        _check_id("msg_id", self.msg_id)
        _check_id("agent_id", self.agent_id)
        _check_id("node_id", self.node_id)
        _check_timestamp(self.timestamp)
        for name in TEXT_FIELDS:
            _check_text(name, getattr(self, name))
        if not isinstance(self.priority, str) or self.priority not in PRIORITIES:
            raise InvalidMessage("priority", f"expected one of {', '.join(PRIORITIES)}")
        content, raw = check_content(self.content)
        same = content is self.content
        return (self if same else replace(self, content=content)), raw

    def validate(self) -> None:
        """Raise InvalidMessage naming the first field that breaks the rule."""
        self.checked_json()

    def to_wire(self) -> dict[str, Any]:
        """Return the JSON-ready dict sent to the relay."""
        return {
            "msg_id": self.msg_id,
            "timestamp": self.timestamp,
            "agent_id": self.agent_id,
            "node_id": self.node_id,
            "task_id": self.task_id,
            "sender": self.sender,
            "recipient": self.recipient,
            "role": self.role,
            "priority": self.priority,
            "content": self.content,
        }

    @classmethod
    def from_wire(cls, data: Any) -> MessageEnvelope:
        """Build and check an envelope from a decoded JSON object."""
        return cls.from_wire_json(data)[0]

    @classmethod
    def from_wire_json(cls, data: Any) -> tuple[MessageEnvelope, bytes]:
        """Like `from_wire`, also returning the content's JSON bytes."""
        if not isinstance(data, dict):
            raise InvalidMessage("message", "expected a JSON object")
        for name in REQUIRED_FIELDS:
            if name not in data:
                raise InvalidMessage(name, "required field is missing")
        unknown = sorted(k for k in data if k not in WIRE_FIELDS)
        if unknown:
            raise InvalidMessage(str(unknown[0])[:MAX_TEXT], _unknown_field_reason())
        # Only null means the default: `false`, `0` or "" are refused, not turned into it.
        priority = DEFAULT_PRIORITY if data.get("priority") is None else data["priority"]
        return _from_fields(data, priority).checked_json()


def from_stored(data: Any) -> MessageEnvelope:
    """Rebuild a message read back from a store or a peer, as it was stored.

    No rule is applied: a row written under an older rule (or by a bug) must still
    read. InvalidMessage only when `data` is not a message at all.
    """
    if not isinstance(data, dict):
        raise InvalidMessage("message", "expected a JSON object")
    for name in REQUIRED_FIELDS:
        if name not in data:
            raise InvalidMessage(name, "required field is missing")
    return _from_fields(data, data.get("priority") or DEFAULT_PRIORITY)


def _from_fields(data: dict[str, Any], priority: Any) -> MessageEnvelope:
    """The envelope of a wire or stored dict whose required fields are there."""
    return MessageEnvelope(
        msg_id=data["msg_id"],
        timestamp=data["timestamp"],
        agent_id=data["agent_id"],
        node_id=data["node_id"],
        content=data["content"],
        task_id=data.get("task_id"),
        sender=data.get("sender"),
        recipient=data.get("recipient"),
        role=data.get("role"),
        priority=priority,
    )


def _unknown_field_reason() -> str:
    return f"unknown field; a message has only {', '.join(WIRE_FIELDS)}"


def _check_id(name: str, value: Any) -> None:
    if not is_id(value):
        raise InvalidMessage(name, ID_RULE)


def _check_timestamp(ts: Any) -> None:
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise InvalidMessage("timestamp", f"{TIMESTAMP_RULE}; got {type(ts).__name__}")
    if not (math.isfinite(ts) and TIMESTAMP_MIN <= ts < TIMESTAMP_MAX):
        hint = " (milliseconds sent as seconds?)" if ts >= TIMESTAMP_MAX * 100 else ""
        raise InvalidMessage("timestamp", f"{TIMESTAMP_RULE}; got {ts!r}{hint}")


def _check_text(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidMessage(name, "expected a string or null")
    if len(value) > MAX_TEXT:
        raise InvalidMessage(name, f"{len(value)} characters; the limit is {MAX_TEXT}")
    bad = FORBIDDEN_TEXT.search(value)
    if bad is not None:
        raise InvalidMessage(
            name, f"control character or lone surrogate U+{ord(bad.group()):04X} at {bad.start()}"
        )
