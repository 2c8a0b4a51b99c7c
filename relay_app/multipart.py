"""A streaming multipart/form-data reader: parts arrive as chunks, never whole in memory.

`iter_parts` yields `(headers, chunks)` for each part; the caller must consume (or
drop) a part's chunks before asking for the next part. Memory stays at about two
read buffers whatever the size of the upload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value

from relay_app.errors import BadRequest

READ_SIZE = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_PARTS = 16


@dataclass(frozen=True, slots=True)
class PartHeaders:
    """The form field name, file name and content type of one part."""

    name: str
    filename: str | None
    content_type: str | None


class _Reader:
    """A read-ahead buffer over a byte stream of known length."""

    def __init__(self, read: Callable[[int], bytes], length: int) -> None:
        self._read = read
        self._left = length
        self.buf = b""

    def fill(self) -> bool:
        """Append the next block to `buf`; False at the end of the body."""
        if self._left <= 0:
            return False
        block = self._read(min(READ_SIZE, self._left))
        if not block:
            raise BadRequest("multipart body ended early (connection closed?)")
        self._left -= len(block)
        self.buf += block
        return True

    def take_until(self, marker: bytes, limit: int, what: str) -> bytes:
        """Return the bytes before `marker` and drop both; 400 past `limit` or at the end."""
        while (at := self.buf.find(marker)) < 0:
            if len(self.buf) > limit or not self.fill():
                raise BadRequest(f"multipart body: {what} is missing or too long")
        head, self.buf = self.buf[:at], self.buf[at + len(marker) :]
        return head

    def need(self, size: int) -> bytes:
        """Return the first `size` bytes of `buf` (reading more if needed), without taking them."""
        while len(self.buf) < size and self.fill():
            pass
        return self.buf[:size]


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/form-data Content-Type; 415 or 400 if there is none."""
    msg = Message()
    msg["content-type"] = content_type
    if msg.get_content_type() != "multipart/form-data":
        raise BadRequest("Content-Type: expected multipart/form-data with a boundary")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise BadRequest("Content-Type: multipart/form-data needs a boundary of 1-70 chars")
    return boundary.encode("latin-1", "replace")


def iter_parts(
    read: Callable[[int], bytes], length: int, boundary: bytes
) -> Iterator[tuple[PartHeaders, Iterator[bytes]]]:
    """Yield each part's headers and an iterator over its data chunks."""
    reader = _Reader(read, length)
    delimiter = b"--" + boundary
    reader.take_until(delimiter, MAX_HEADER_BYTES, "the first boundary")
    for _ in range(MAX_PARTS + 1):
        after = reader.need(2)
        if after == b"--":
            return
        if after != b"\r\n":
            raise BadRequest("multipart body: malformed boundary line")
        reader.buf = reader.buf[2:]
        raw = reader.take_until(b"\r\n\r\n", MAX_HEADER_BYTES, "a part's header block")
        chunks = _part_chunks(reader, b"\r\n" + delimiter)
        yield _headers(raw), chunks
        for _ in chunks:  # whatever the caller left of this part
            pass
    raise BadRequest(f"multipart body: more than {MAX_PARTS} parts")


def _part_chunks(reader: _Reader, delimiter: bytes) -> Iterator[bytes]:
    """Yield a part's data up to the next delimiter, keeping a possible partial one back."""
    keep = len(delimiter) - 1
    while True:
        at = reader.buf.find(delimiter)
        if at >= 0:
            if at:
                yield reader.buf[:at]
            reader.buf = reader.buf[at + len(delimiter) :]
            return
        if len(reader.buf) > keep:
            out, reader.buf = reader.buf[:-keep], reader.buf[-keep:]
            yield out
        if not reader.fill():
            raise BadRequest("multipart body: a part is not closed by a boundary")


def _headers(raw: bytes) -> PartHeaders:
    """Parse a part's header block (UTF-8, as browsers and requests send it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("multipart body: part headers are not UTF-8") from exc
    msg = Message()
    for line in text.split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            raise BadRequest("multipart body: malformed part header line")
        msg[key.strip()] = value.strip()
    disposition = msg.get("content-disposition")
    if disposition is None or msg.get_content_disposition() != "form-data":
        raise BadRequest("multipart body: each part needs Content-Disposition: form-data")
    name = _param(msg, "name")
    if name is None:
        raise BadRequest("multipart body: a part has no field name")
    filename = _param(msg, "filename")
    content_type = msg.get("content-type")
    return PartHeaders(name, filename, str(content_type) if content_type else None)


def _param(msg: Message, key: str) -> str | None:
    """A Content-Disposition parameter, RFC 2231 encoded or not."""
    value = msg.get_param(key, header="content-disposition")
    if value is None or isinstance(value, str):
        return value
    return collapse_rfc2231_value(value)
