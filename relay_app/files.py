"""POST /sync/files: stream one multipart upload to `<data_dir>/files/<agent_id>/<file_id>`.

The file part goes to `files/.incoming/<file_id>.part` as it arrives (the agent id may
come after it in the form), hashed and counted on the way, fsynced, then renamed into
place; the row in `files` is written by the IngestActor afterwards. `.incoming` cannot
collide with an agent id, which never starts with a dot.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from relay_app.diskspace import SpaceGate
from relay_app.errors import (
    BadRequest,
    LengthRequired,
    PayloadTooLarge,
    RelayAppError,
    StorageFull,
    StoreUnavailable,
)
from relay_app.http import ClientBody, content_length
from relay_app.multipart import boundary_of, iter_parts
from relay_app.store import FileRecord
from relay_app.validate import check_id
from runtime.core.durable import fsync_dir
from runtime.core.envelope import new_msg_id

# Room for the form's boundaries, part headers and small fields around the file.
MULTIPART_OVERHEAD = 64 * 1024
MAX_FIELD_BYTES = 1024
MAX_FILENAME_CHARS = 255
FIELDS = ("agent_id", "msg_id")


@dataclass
class _Upload:
    """What the form held, as it is being read."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    size: int = 0
    sha256: str = ""
    seen_file: bool = False


def receive_file(
    environ: dict[str, Any],
    *,
    data_dir: Path,
    node_id: str,
    max_file_bytes: int,
    gate: SpaceGate,
    check_agent: Callable[[str], None] = lambda _: None,
) -> FileRecord:
    """Store the upload on disk and return its record (not yet in the database).

    `check_agent` raises (403) for an agent the node may not write for; the file read so
    far is then removed, as for any other refusal.
    """
    boundary = boundary_of(environ.get("CONTENT_TYPE", ""))
    length = content_length(environ)
    if length is None:
        raise LengthRequired("a file upload needs a Content-Length header")
    if length > max_file_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"upload is {length} bytes; the file limit is {max_file_bytes}")
    gate.check(incoming=length)
    file_id = new_msg_id()
    tmp = data_dir / "files" / ".incoming" / f"{file_id}.part"
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        upload = _read_form(ClientBody(environ).read, length, boundary, tmp, max_file_bytes)
        agent_id = check_id("agent_id", upload.fields.get("agent_id"))
        check_agent(agent_id)
        msg_id = upload.fields.get("msg_id")
        if msg_id is not None:
            check_id("msg_id", msg_id)
        final = data_dir / "files" / agent_id / file_id
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as exc:
        raise _os_error(exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    relative = final.relative_to(data_dir).as_posix()
    return FileRecord(
        file_id, agent_id, node_id, msg_id, upload.filename, upload.size, upload.sha256, relative
    )


def _read_form(read: Any, length: int, boundary: bytes, tmp: Path, max_file_bytes: int) -> _Upload:
    upload = _Upload()
    for headers, chunks in iter_parts(read, length, boundary):
        if headers.name == "file":
            if upload.seen_file:
                raise BadRequest("form: more than one 'file' part")
            upload.seen_file = True
            upload.filename = _check_filename(headers.filename)
            with open(tmp, "xb") as out:
                upload.size, upload.sha256 = _copy(chunks, out, max_file_bytes)
        elif headers.name in FIELDS:
            if headers.name in upload.fields:
                raise BadRequest(f"form: field {headers.name!r} given twice")
            upload.fields[headers.name] = _field_text(headers.name, chunks)
        else:
            raise BadRequest(f"form: unexpected field {headers.name[:64]!r}; expected {FIELDS}"
                             " and 'file'")  # fmt: skip
    if not upload.seen_file:
        raise BadRequest("form: the 'file' part is missing")
    return upload


def _copy(chunks: Iterator[bytes], out: IO[bytes], limit: int) -> tuple[int, str]:
    """Write chunks to `out`, fsynced, returning size and sha256; 413 past `limit`."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"file is over the limit of {limit} bytes")
        digest.update(chunk)
        out.write(chunk)
    out.flush()
    os.fsync(out.fileno())
    return size, digest.hexdigest()


def _field_text(name: str, chunks: Iterator[bytes]) -> str:
    data = b""
    for chunk in chunks:
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise BadRequest(f"form: field {name!r} is longer than {MAX_FIELD_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"form: field {name!r} is not UTF-8") from exc


def _check_filename(name: str | None) -> str | None:
    """Keep a plain file name only: no directories, no dot-dot, no NUL or control chars."""
    if name is None:
        return None
    bad = (
        name in ("", ".", "..")
        or len(name) > MAX_FILENAME_CHARS
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )
    if bad:
        raise BadRequest(
            f"filename: expected a plain file name of 1-{MAX_FILENAME_CHARS} characters without"
            " '/', '\\', '..' or control characters"
        )
    return name


def _os_error(exc: OSError) -> RelayAppError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("the relay's disk is full; nothing was stored")
    return StoreUnavailable(f"writing the file failed: {exc.strerror or exc}")
