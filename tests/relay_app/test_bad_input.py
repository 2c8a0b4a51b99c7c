"""Bad input never hurts the relay: a 4xx JSON error saying what is wrong, nothing stored."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from relay_app.server import RelayServer
from tests.relay_app.conftest import RelayFactory
from tests.relay_app.helpers import NODE_A, NodeClient, batch, make_config, message, row_counts

# Every test that starts a relay runs on both engines (tests/relay_app/conftest.py).
STORE_ENGINES = ("sqlite", "postgres")

MAX_BODY = 1024 * 1024
MAX_BATCH = 50
MAX_FILE = 256 * 1024
BOUNDARY = "b0undary"


def wire(**changes: Any) -> bytes:
    """A valid single-message body with some fields changed (None removes one)."""
    data = message().to_wire()
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return orjson.dumps(data)


def batch_body(count: int = 3, **changes: Any) -> bytes:
    """A valid batch body with some top-level fields changed."""
    body = batch([message() for _ in range(count)], "bad-input-batch")
    body.update(changes)
    return orjson.dumps(body)


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body built by hand: (name, filename, data) per part."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data
        out += b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
GZIP = {"Content-Encoding": "gzip"}
FILE = ("file", "report.txt", b"data")

# (id, path, body, extra headers, status, words the error must contain)
CASES: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("malformed JSON", "/sync/message", b'{"msg_id": ', {}, 400, "not valid JSON"),
    ("non-UTF-8 JSON", "/sync/message", b'{"msg_id": "\xff\xfe"}', {}, 400, "UTF-8"),
    ("empty body", "/sync/message", b"", {}, 400, "empty"),
    ("JSON array", "/sync/message", b"[1, 2]", {}, 400, "JSON object"),
    ("JSON NaN", "/sync/message", b'{"timestamp": NaN}', {}, 400, "not valid JSON"),
    ("missing msg_id", "/sync/message", wire(msg_id=None), {}, 400, "msg_id"),
    ("missing content", "/sync/message", wire(content=None), {}, 400, "content"),
    ("timestamp as text", "/sync/message", wire(timestamp="noon"), {}, 400, "timestamp"),
    ("timestamp as bool", "/sync/message", wire(timestamp=True), {}, 400, "timestamp"),
    ("agent_id as number", "/sync/message", wire(agent_id=7), {}, 400, "agent_id"),
    ("unknown priority", "/sync/message", wire(priority="urgent"), {}, 400, "priority"),
    ("task_id too long", "/sync/message", wire(task_id="t" * 300), {}, 400, "task_id"),
    ("role with NUL", "/sync/message", wire(role="a\x00b"), {}, 400, "role"),
    ("msg_id path trick", "/sync/message", wire(msg_id="../../etc"), {}, 400, "msg_id"),
    ("agent_id absolute", "/sync/message", wire(agent_id="/etc/passwd"), {}, 400, "agent_id"),
    ("agent_id NUL", "/sync/message", wire(agent_id="a\x00"), {}, 400, "agent_id"),
    ("oversized body", "/sync/message", b" " * (MAX_BODY + 1), {}, 413, "limit"),
    (
        "gzip bomb",
        "/sync/messages",
        gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]", 9),
        GZIP,
        413,
        "decompressed",
    ),
    ("broken gzip", "/sync/messages", b"\x1f\x8b not gzip", GZIP, 400, "gzip"),
    ("truncated gzip", "/sync/messages", gzip.compress(batch_body())[:-12], GZIP, 400, "gzip"),
    ("unknown encoding", "/sync/messages", batch_body(), {"Content-Encoding": "br"}, 415, "br"),
    ("too many in batch", "/sync/messages", batch_body(MAX_BATCH + 1), {}, 413, "limit"),
    ("empty batch", "/sync/messages", batch_body(0), {}, 400, "non-empty"),
    ("messages not a list", "/sync/messages", batch_body(messages={}), {}, 400, "messages"),
    ("missing batch_id", "/sync/messages", batch_body(batch_id=None), {}, 400, "batch_id"),
    ("batch_id path trick", "/sync/messages", batch_body(batch_id="../x"), {}, 400, "batch_id"),
    (
        "one bad message in a batch",
        "/sync/messages",
        orjson.dumps(
            {
                "batch_id": "half",
                "node_id": NODE_A,
                "messages": [message().to_wire(), {**message().to_wire(), "timestamp": "x"}],
            }
        ),
        {},
        400,
        "messages[1].timestamp",
    ),
    ("status not an object", "/sync/status", b'"fine"', {}, 400, "JSON object"),
    (
        "status agent path trick",
        "/sync/status",
        orjson.dumps({"node_id": NODE_A, "agents": [{"agent_id": "../../x"}]}),
        {},
        400,
        "agents[0].agent_id",
    ),
    (
        "status nested field",
        "/sync/status",
        orjson.dumps({"node_id": NODE_A, "agents": [{"agent_id": "a", "extra": {"x": 1}}]}),
        {},
        400,
        "agents[0].extra",
    ),
    (
        "status number as text",
        "/sync/status",
        orjson.dumps({"node_id": NODE_A, "agents": [{"agent_id": "a", "outbox_depth": "9"}]}),
        {},
        400,
        "outbox_depth",
    ),
    ("file: agent_id ../", "/sync/files", form(("agent_id", None, b"../../etc"), FILE),
     MULTIPART, 400, "agent_id"),
    ("file: agent_id absolute", "/sync/files", form(("agent_id", None, b"/tmp/x"), FILE),
     MULTIPART, 400, "agent_id"),
    ("file: agent_id NUL", "/sync/files", form(("agent_id", None, b"a\x00b"), FILE),
     MULTIPART, 400, "agent_id"),
    ("file: filename ../", "/sync/files",
     form(("agent_id", None, b"agent-1"), ("file", "../../evil.sh", b"x")),
     MULTIPART, 400, "filename"),
    ("file: absolute filename", "/sync/files",
     form(("agent_id", None, b"agent-1"), ("file", "/etc/passwd", b"x")),
     MULTIPART, 400, "filename"),
    ("file: filename NUL", "/sync/files",
     form(("agent_id", None, b"agent-1"), ("file", "a\x00.txt", b"x")),
     MULTIPART, 400, "filename"),
    ("file: missing agent_id", "/sync/files", form(FILE), MULTIPART, 400, "agent_id"),
    ("file: missing file part", "/sync/files", form(("agent_id", None, b"agent-1")),
     MULTIPART, 400, "'file' part is missing"),
    ("file: too big", "/sync/files",
     form(("agent_id", None, b"agent-1"), ("file", "big.bin", b"x" * (MAX_FILE + 1))),
     MULTIPART, 413, "limit"),
    ("file: unexpected field", "/sync/files",
     form(("agent_id", None, b"agent-1"), ("path", None, b"/etc"), FILE),
     MULTIPART, 400, "unexpected field"),
    ("file: not multipart", "/sync/files", b"agent_id=a", {"Content-Type": "text/plain"},
     400, "multipart/form-data"),
    ("file: no boundary", "/sync/files", form(FILE), {"Content-Type": "multipart/form-data"},
     400, "boundary"),
    ("file: truncated form", "/sync/files", form(("agent_id", None, b"agent-1"), FILE)[:-30],
     MULTIPART, 400, "multipart"),
]  # fmt: skip


@pytest.fixture
def strict_relay(relay_factory: RelayFactory, data_dir: Path) -> RelayServer:
    """A relay with small limits, so limits are cheap to cross."""
    config = make_config(
        data_dir, max_body_bytes=MAX_BODY, max_batch_messages=MAX_BATCH, max_file_bytes=MAX_FILE
    )
    return relay_factory(config)


@pytest.fixture
def client(strict_relay: RelayServer) -> Iterator[NodeClient]:
    """node-a on the strict relay."""
    node = NodeClient(strict_relay.url, NODE_A)
    yield node
    node.close()


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_gets_a_4xx_json_error_and_stores_nothing(
    strict_relay: RelayServer,
    client: NodeClient,
    data_dir: Path,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    before = row_counts(data_dir)
    response = client.post(path, data=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert words in response.json()["error"]
    assert row_counts(data_dir) == before
    assert not any((data_dir / "files" / ".incoming").glob("*"))
    assert requests.get(strict_relay.url + "/healthz", timeout=10).status_code == 200


QUERY_CASES = [
    ({"limit": "lots"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"page": "-1"}, "page"),
    ({"since": "yesterday"}, "since"),
    ({"until": "inf"}, "until"),
    ({"order": "sideways"}, "order"),
    ({"order": ""}, "order"),
    ({"next": "not-a-cursor"}, "next"),
    ({"priority": "urgent"}, "priority"),
    ({"status": "deleted"}, "status"),
    ({"colour": "blue"}, "colour"),
    ({"agent": "x" * 300}, "agent"),
]


@pytest.mark.parametrize(("params", "words"), QUERY_CASES, ids=[c[1] for c in QUERY_CASES])
def test_a_bad_query_gets_a_400_naming_the_parameter(
    client: NodeClient, params: dict[str, str], words: str
) -> None:
    response = client.get("/query/messages", params=params)
    assert response.status_code == 400
    assert words in response.json()["error"]


def test_a_bad_id_in_a_path_is_refused(client: NodeClient) -> None:
    assert client.get("/query/messages/..%2F..%2Fetc").status_code in (400, 404)
    assert client.get("/files/..%2Fmessages%2Fcluster_messages.db").status_code in (400, 404)
    response = client.get("/query/messages/a%00b")
    assert response.status_code == 400
    assert "msg_id" in response.json()["error"]


def test_a_body_larger_than_any_limit_is_refused_before_it_is_read(
    strict_relay: RelayServer,
) -> None:
    # A declared length far over every limit: answered at once, the connection closed.
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(strict_relay.url.rsplit(":", 1)[1]))
    try:
        conn.putrequest("POST", "/sync/messages")
        conn.putheader("Content-Length", str(50 * 1024 * 1024 * 1024))
        conn.putheader("X-Commander-Node", NODE_A)
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert response.getheader("Content-Type") == "application/json"
        assert "limit" in orjson.loads(response.read())["error"]
    finally:
        conn.close()


@pytest.mark.parametrize("query", ["agent=%ff", "%ff=1", "task_id=caf%C3"])
def test_a_query_string_that_is_not_utf8_is_no_500(client: NodeClient, query: str) -> None:
    response = client.get(f"/query/messages?{query}")
    assert response.status_code in (200, 400), response.text  # U+FFFD: refused or no match
