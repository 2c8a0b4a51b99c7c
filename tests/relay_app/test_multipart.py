"""The streaming multipart reader: boundaries split across reads, limits, malformed bodies."""

from __future__ import annotations

import io

import pytest

from relay_app.errors import BadRequest
from relay_app.multipart import boundary_of, iter_parts


def body(*parts: tuple[str, str | None, bytes], boundary: str = "XyZ") -> bytes:
    out = b"preamble\r\n"
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f"; filename*=UTF-8''{filename}"
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\nepilogue".encode()


def parse(raw: bytes, read_size: int) -> list[tuple[str, str | None, bytes]]:
    stream = io.BytesIO(raw)
    out = []
    for headers, chunks in iter_parts(lambda n: stream.read(min(n, read_size)), len(raw), b"XyZ"):
        out.append((headers.name, headers.filename, b"".join(chunks)))
    return out


@pytest.mark.parametrize("read_size", [1, 3, 7, 64, 65536])
def test_parts_come_out_whole_whatever_the_read_size(read_size: int) -> None:
    # "--XyZ" without the CR LF before it is data; so is a delimiter cut short at the end.
    data = bytes(range(256)) * 40 + b"--XyZ in the middle\r\n--Xy"
    raw = body(("agent_id", None, b"agent-1"), ("file", "r%C3%A9sum%C3%A9.txt", data))
    assert parse(raw, read_size) == [("agent_id", None, b"agent-1"), ("file", "résumé.txt", data)]


def test_a_part_left_unread_is_skipped() -> None:
    raw = body(("a", None, b"1" * 5000), ("b", None, b"2"))
    stream = io.BytesIO(raw)
    names = [h.name for h, _ in iter_parts(stream.read, len(raw), b"XyZ")]
    assert names == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"no boundary at all", "first boundary"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nno end', "not closed"),
        (b"--XyZ\r\nX-Other: 1\r\n\r\nx\r\n--XyZ--", "Content-Disposition"),
        (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", "field name"),
        (b"--XyZ\r\nbroken header\r\n\r\nx\r\n--XyZ--", "malformed"),
        (b'--XyZ\r\nContent-Disposition: form-data; name="\xff"\r\n\r\n--XyZ--', "UTF-8"),
        (b"--XyZjunk", "malformed boundary"),
        (b"--XyZ\r\n" + b"H" * 70_000, "header block"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(raw: bytes, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        parse(raw, 65536)


def test_too_many_parts_are_refused() -> None:
    raw = body(*[("f", None, b"x")] * 17)
    with pytest.raises(BadRequest, match="more than 16 parts"):
        parse(raw, 65536)


def test_the_boundary_comes_from_the_content_type() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
    with pytest.raises(BadRequest):
        boundary_of("application/json")
    with pytest.raises(BadRequest):
        boundary_of("multipart/form-data; boundary=" + "x" * 71)
