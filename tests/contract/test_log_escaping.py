"""Text a client controls reaches a log line escaped and cut: no forged lines, no megabytes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote as urlquote

import pytest
import requests

from relay_app.server import RelayServer
from runtime.core.logsafe import LIMIT, quote
from runtime.core.relay_client import RelayTarget
from runtime.node.remote import RemoteReader
from tests.contract.conftest import AGENT, AGENT_HEADERS, NODE, NODE_HEADERS, Live, operator_cookie
from tests.support import TOKENS, cluster

FORGED = "FORGED 2026-12-01 00:00:00 CRITICAL commander.node: all data lost"
HOSTILE = f"evil\n{FORGED}\r\n{FORGED}\x1b[31m\x1b[2J" + "x" * 20_000


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RelayServer]:
    """A real relay on 127.0.0.1."""
    with RelayServer(cluster(tmp_path / "relay"), host="127.0.0.1", port=0) as server:
        yield server


def test_a_relay_lookup_of_an_id_with_newlines_and_escapes_logs_one_escaped_line(
    relay: RelayServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Every door now refuses such an id before a lookup; the call site escapes it anyway.
    caplog.set_level(logging.INFO)  # the daemons' level (a library's DEBUG lines quote URLs)
    reader = RemoteReader(RelayTarget(relay.url, NODE, TOKENS[NODE]))
    assert reader.get(HOSTILE) is None  # the relay refuses it; the read is a miss
    lines = [r.getMessage() for r in caplog.records if "evil" in r.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert quote(HOSTILE) in line
    assert len(line) < 3 * LIMIT + 1000


def test_quote_escapes_like_repr_and_cuts_at_the_limit() -> None:
    assert quote("a\nb\r\x1b[0m") == repr("a\nb\r\x1b[0m")
    assert quote("x" * 1000, limit=10) == repr("x" * 10) + "... (990 more characters)"
    assert quote(ValueError("bad\nthing")) == repr("bad\nthing")
    assert quote("\u2028") == repr("\u2028") != "'\u2028'"


def _hostile_requests(live: Live) -> list[requests.Response]:
    relay, node, path_id = live.relay.url, live.node.url, urlquote(HOSTILE, safe="")
    cookie = {"Cookie": operator_cookie(relay)}
    a1 = AGENT_HEADERS
    header_id = HOSTILE.replace("\n", "").replace("\r", "")[:4000]  # headers carry no CR/LF
    message = {"msg_id": HOSTILE, "timestamp": 1.8e9, "agent_id": HOSTILE, "node_id": NODE,
               "content": HOSTILE, HOSTILE[:300]: 1}  # fmt: skip
    return [
        requests.get(f"{relay}/query/messages/{path_id}", headers=NODE_HEADERS, timeout=30),
        requests.get(f"{relay}/files/{path_id}", headers=NODE_HEADERS, timeout=30),
        requests.get(
            f"{relay}/query/messages",
            params={"agent": HOSTILE[:2000]},
            headers=NODE_HEADERS,
            timeout=30,
        ),
        requests.post(f"{relay}/sync/message", json=message, headers=NODE_HEADERS, timeout=30),
        requests.get(
            f"{relay}/query/status",
            timeout=30,
            headers={**NODE_HEADERS, "X-Commander-Node": header_id},
        ),
        requests.get(f"{relay}/messages/m/{path_id}", headers=cookie, timeout=30),
        requests.get(f"{relay}/messages", params={"q": HOSTILE[:2000]}, headers=cookie, timeout=30),
        requests.get(f"{node}/agents/{AGENT}/messages/{path_id}", headers=a1, timeout=30),
        requests.get(f"{node}/agents/{path_id}/status", headers=a1, timeout=30),
        requests.post(
            f"{node}/agents/{AGENT}/messages",
            headers=a1,
            timeout=30,
            json={"content": HOSTILE, "task_id": HOSTILE, HOSTILE[:300]: 1},
        ),
    ]


def test_hostile_ids_at_every_door_of_both_processes_forge_no_log_line(live: Live) -> None:
    sizes = {p: p.stat().st_size for p in (live.relay_log, live.node_log)}
    answers = _hostile_requests(live)
    assert all(a.status_code < 500 for a in answers), [a.status_code for a in answers]
    for log, before in sizes.items():
        with log.open("rb") as handle:
            handle.seek(before)
            written = handle.read()
        assert len(written) < 20_000, f"{log.name} grew by {len(written)} bytes"
        assert b"\r" not in written
        assert b"\x1b" not in written
        assert not any(line.startswith(b"FORGED") for line in written.splitlines())
