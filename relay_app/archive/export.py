"""Export for analysis: hot and archived messages of a report-time window, streamed.

NDJSON writes one message a line, as the archive holds it (content as JSON). Parquet
(pyarrow, the `parquet` extra) writes row groups of EXPORT_CHUNK rows, content as a
JSON string column. Either way memory holds one chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

import orjson

from relay_app.archive.matching import ArchiveQuery
from relay_app.archive.reader import ArchiveReader, Order
from relay_app.store import MessageQuery, MessageStore

T = TypeVar("T")
EXPORT_CHUNK = 1000
COLUMNS = ("msg_id", "timestamp", "agent_id", "node_id", "task_id", "sender", "recipient",
           "role", "priority", "status", "received_at", "content")  # fmt: skip


def hot_rows(
    store: MessageStore, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    """Every hot message in the window, oldest first, a page at a time."""
    query = MessageQuery(since=since, until=until, limit=EXPORT_CHUNK, descending=False)
    while True:
        page = store.query_messages(query)
        yield from page.messages
        if not page.has_more or page.last_id is None:
            return
        query = MessageQuery(since=since, until=until, limit=EXPORT_CHUNK, descending=False,
                             after_id=page.last_id, after_ts=page.last_ts)  # fmt: skip


def archived_rows(
    reader: ArchiveReader, since: float | None, until: float | None
) -> Iterator[dict[str, Any]]:
    """Every archived message in the window, frame by frame (restored ones left out)."""
    yield from reader.scan(ArchiveQuery(since=since, until=until), Order())


def write_ndjson(rows: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    """One JSON object a line; return how many."""
    count = 0
    for row in rows:
        out.write(orjson.dumps({name: row[name] for name in COLUMNS}) + b"\n")
        count += 1
    return count


def write_parquet(rows: Iterator[dict[str, Any]], out: IO[bytes]) -> int:
    """Parquet with zstd, content as a JSON string; return how many rows."""
    # Imported here: pyarrow is an optional extra, and heavy.
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    schema = pa.schema([(n, pa.float64() if n in ("timestamp", "received_at") else pa.string())
                        for n in COLUMNS])  # fmt: skip
    count = 0
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for chunk in chunks(rows, EXPORT_CHUNK):
            columns = {n: [r[n] for r in chunk] for n in COLUMNS}
            columns["content"] = [orjson.dumps(r["content"]).decode() for r in chunk]
            writer.write_table(pa.table(columns, schema=schema))
            count += len(chunk)
    return count


def chunks(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """`rows` in lists of `size` (the last one shorter), never more in memory."""
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
