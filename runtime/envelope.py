"""The message envelope every layer passes around, and its one codec.

`content` is any JSON value; on disk it is stored as gzip-compressed orjson
(`encode_content`/`decode_content`). On the wire (relay HTTP API) the envelope
is a JSON object with `content` as plain JSON (`to_wire`/`from_wire`).
"""

from __future__ import annotations

import gzip
import math
import os
import re
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from runtime.errors import InvalidMessage

PRIORITIES = ("low", "normal", "high", "critical")
# Ids end up in file paths and URLs: letters, digits, dot, dash, underscore, colon.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_TEXT = 256
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
    return gzip.compress(orjson.dumps(content), compresslevel=GZIP_LEVEL, mtime=0)


def decode_content(blob: bytes) -> Any:
    """Inverse of `encode_content`; refuses to inflate past a safe size."""
    inflater = zlib.decompressobj(wbits=31)
    raw = inflater.decompress(blob, MAX_DECODED_CONTENT)
    if inflater.unconsumed_tail:
        raise InvalidMessage("content", "decompressed content exceeds 16 MiB")
    return orjson.loads(raw)


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
    priority: str = "normal"

    @classmethod
    def new(
        cls,
        *,
        agent_id: str,
        node_id: str,
        content: Any,
        clock: Callable[[], float] = time.time,
        **fields: Any,
    ) -> MessageEnvelope:
        """Create a message with a fresh msg_id and timestamp, validated."""
        now = clock()
        fields.setdefault("sender", agent_id)
        env = cls(
            msg_id=new_msg_id(now),
            timestamp=now,
            agent_id=agent_id,
            node_id=node_id,
            content=content,
            **fields,
        )
        env.validate()
        return env

    def validate(self) -> None:
        """Raise InvalidMessage naming the first bad field."""
        _check_id("msg_id", self.msg_id)
        _check_id("agent_id", self.agent_id)
        _check_id("node_id", self.node_id)
        ts = self.timestamp
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise InvalidMessage("timestamp", "expected a finite number of seconds")
        for name in ("task_id", "sender", "recipient", "role"):
            _check_text(name, getattr(self, name))
        if self.priority not in PRIORITIES:
            raise InvalidMessage("priority", f"expected one of {', '.join(PRIORITIES)}")

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
        """Build and validate an envelope from a decoded JSON object."""
        if not isinstance(data, dict):
            raise InvalidMessage("message", "expected a JSON object")
        missing = [k for k in ("msg_id", "timestamp", "agent_id", "node_id") if k not in data]
        if missing:
            raise InvalidMessage(missing[0], "required field is missing")
        if "content" not in data:
            raise InvalidMessage("content", "required field is missing")
        env = cls(
            msg_id=data["msg_id"],
            timestamp=data["timestamp"],
            agent_id=data["agent_id"],
            node_id=data["node_id"],
            content=data["content"],
            task_id=data.get("task_id"),
            sender=data.get("sender"),
            recipient=data.get("recipient"),
            role=data.get("role"),
            priority=data.get("priority") or "normal",
        )
        env.validate()
        return env


def _check_id(name: str, value: Any) -> None:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidMessage(
            name, "expected 1-128 characters of letters, digits, '.', '_', ':' or '-'"
        )


def _check_text(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidMessage(name, "expected a string or null")
    if len(value) > MAX_TEXT or "\x00" in value:
        raise InvalidMessage(name, f"expected at most {MAX_TEXT} characters and no NUL")
