"""The front hands the app the credentials of a Unix socket's peer, and none over TCP."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import requests

from runtime.core.peer_cred import PEER_GID, PEER_PID, PEER_UID, PeerCred, peer_cred
from runtime.core.wsgi import serve_in_thread, serve_unix_in_thread
from runtime.node.unix_http import BASE_URL, unix_session


def peer_keys(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Answer the peer keys the environ holds."""
    found = {key: environ[key] for key in (PEER_PID, PEER_UID, PEER_GID) if key in environ}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [orjson.dumps(found)]


def test_a_socketpair_peer_is_this_process() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert peer_cred(left) == PeerCred(os.getpid(), os.geteuid(), os.getegid())


def test_a_tcp_socket_has_no_peer_credentials() -> None:
    with socket.socket(socket.AF_INET) as sock:
        assert peer_cred(sock) is None
    assert peer_cred(None) is None


def test_the_environ_carries_the_peer_on_a_unix_socket_only(tmp_path: Path) -> None:
    unix = serve_unix_in_thread(peer_keys, tmp_path / "s.sock")
    tcp = serve_in_thread(peer_keys, "127.0.0.1", 0)
    try:
        # Headers that look like the keys must not pose as them.
        forged = {"Commander-Peer-Uid": "0", "commander.peer_uid": "0"}
        over_unix = unix_session(str(tmp_path / "s.sock")).get(BASE_URL, headers=forged, timeout=5)
        assert over_unix.json() == {PEER_PID: os.getpid(), PEER_UID: os.geteuid(),
                                    PEER_GID: os.getegid()}  # fmt: skip
        assert requests.get(tcp.url, headers=forged, timeout=5).json() == {}
    finally:
        unix.stop()
        tcp.stop()
