"""Node authentication: `X-Commander-Node` plus `Authorization: Bearer <token>`.

The relay never sees tokens at rest, only their sha256: from `token_sha256` of each
node in relay.yaml and from the token hashes file (`node_id: sha256hex` per line,
written by `commander-relay add-node`). The file wins where both name a node, so a
token can be rotated without editing the shared topology; it is re-read when it
changes, so a node added while the relay runs is accepted without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

from relay_app.errors import Unauthorized
from relay_app.refusals import REFUSALS
from runtime.core.config import ClusterConfig
from runtime.core.logsafe import quote
from runtime.core.token_files import WatchedTable, read_sha256_table
from runtime.core.token_files import token_sha256 as token_sha256  # noqa: PLC0414 - re-exported

logger = logging.getLogger(__name__)

NODE_HEADER = "HTTP_X_COMMANDER_NODE"
# The same bytes for a missing node header, an unknown node and a wrong token.
UNAUTHORIZED = "unknown node or wrong token"
# Compared against when the node is unknown, so both failures cost the same time.
_DUMMY_HASH = hashlib.sha256(b"commander-relay: no such node").hexdigest()


def hashes_file_path(config: ClusterConfig) -> Path | None:
    """The token hashes file; a relative path is relative to relay.yaml's directory."""
    name = config.relay.token_hashes_file
    if not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else Path(config.config_dir or ".") / path


def read_hashes_file(path: Path) -> dict[str, str]:
    """Parse a token hashes file; raise ConfigError naming every bad entry."""
    return read_sha256_table(path, "node_id")


class TokenBook:
    """Who may talk to the relay: node id -> sha256 of its token."""

    def __init__(self, config: ClusterConfig) -> None:
        """Read relay.yaml's hashes and the hashes file (a missing file counts as empty)."""
        self._static = {n.id: n.token_sha256 for n in config.nodes if n.token_sha256}
        self._file = WatchedTable(hashes_file_path(config), "node_id")

    def _hashes(self) -> dict[str, str]:
        """The file wins where both name a node: a token rotates without editing relay.yaml."""
        return {**self._static, **self._file.current()}

    def nodes(self) -> list[str]:
        """The node ids that currently have a token."""
        return sorted(self._hashes())

    def authenticate(
        self, node_id: str | None, authorization: str | None, peer: str = "unknown"
    ) -> str:
        """Return the node id if its bearer token matches; raise Unauthorized otherwise.

        Every failure answers the same `UNAUTHORIZED` text, so that a stranger cannot
        tell a node id that exists from one that does not; the log says which it was,
        and `peer`, the client's address.
        """
        if not node_id:
            raise _refused("no X-Commander-Node header", node_id, peer)
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _refused("no 'Authorization: Bearer <token>' header", node_id, peer)
        expected = self._hashes().get(node_id)
        # Header values arrive as latin-1 text in WSGI; hash the bytes the node sent.
        actual = hashlib.sha256(token.encode("latin-1", "replace")).hexdigest()
        matches = hmac.compare_digest(actual, expected or _DUMMY_HASH)
        if expected is None:
            raise _refused("a node with no token on this relay", node_id, peer)
        if not matches:
            raise _refused("a wrong token", node_id, peer)
        return node_id


def _refused(reason: str, node_id: str | None, peer: str) -> Unauthorized:
    """The one 401 every failed token gets; the reason goes to the log only."""
    REFUSALS.warning(
        "node request from %s refused (401): %s, node %s", peer, reason, quote(node_id or "")
    )
    return Unauthorized(UNAUTHORIZED)
