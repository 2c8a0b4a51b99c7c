"""The batch body of `POST /sync/messages`: `{"batch_id", "node_id", "messages": [...]}`.

Built here only: by the uploader's write-through from envelopes in hand, and by the
outbox from each message's wire JSON, kept since the message joined its batch and
spliced in as bytes, so a batch is encoded once however often it is retried. The
relay's door reads the same fields (`BATCH_FIELDS`).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

import orjson

from runtime.core.envelope import GZIP_LEVEL, MessageEnvelope

BATCH_FIELDS = ("batch_id", "node_id", "messages")


def message_json(envelope: MessageEnvelope) -> bytes:
    """One message as the relay receives it, as compact JSON."""
    return orjson.dumps(envelope.to_wire())


def batch_json(batch_id: str, node_id: str, messages: Iterable[bytes]) -> bytes:
    """The uncompressed body around messages already encoded as JSON objects."""
    head = orjson.dumps({"batch_id": batch_id, "node_id": node_id})[:-1]  # without its '}'
    return head + b',"messages":[' + b",".join(messages) + b"]}"


def batch_gzip(batch_id: str, node_id: str, messages: Iterable[bytes]) -> bytes:
    """The body as sent (`Content-Encoding: gzip`); the same input gives the same bytes."""
    body = batch_json(batch_id, node_id, messages)
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def batch_messages(payload: object) -> list[dict[str, object]] | None:
    """The messages of a gzip batch body, or None when it does not read back as one."""
    try:
        doc = orjson.loads(gzip.decompress(payload))  # type: ignore[arg-type]
    except (TypeError, ValueError, OSError, EOFError):
        return None
    messages = doc.get("messages") if isinstance(doc, dict) else None
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return None
    return messages
