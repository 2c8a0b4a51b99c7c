"""Who is at the other end of a Unix socket: the kernel's SO_PEERCRED, for the WSGI environ.

The kernel records the connecting process's pid, uid and gid when it calls
connect(2); no client can forge them (PostgreSQL's `peer` authentication relies on
the same). TCP connections have none: their environ lacks the keys.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

PEER_PID = "commander.peer_pid"
PEER_UID = "commander.peer_uid"
PEER_GID = "commander.peer_gid"
_UCRED = struct.Struct("3i")  # struct ucred: pid_t pid, uid_t uid, gid_t gid


@dataclass(frozen=True)
class PeerCred:
    """The connecting process's credentials, as they were at connect(2)."""

    pid: int
    uid: int
    gid: int

    def environ(self) -> dict[str, Any]:
        """The WSGI environ keys that carry them."""
        return {PEER_PID: self.pid, PEER_UID: self.uid, PEER_GID: self.gid}


def peer_cred(sock: Any) -> PeerCred | None:
    """The peer's credentials on a connected Unix socket; None on any other socket."""
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError:  # unknown: a door that checks the peer then refuses it
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid, uid, gid)
