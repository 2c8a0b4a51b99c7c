"""Open and close the node's doors: one Unix socket per agent, node.sock, loopback TCP.

`plan_doors` checks everything that can be wrong before any actor starts (socket
paths too long, a non-loopback listen address without its flag or any agent token,
an agent's `unix_user` unknown here), so the daemon exits 2 with a message instead
of failing half started.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.core.loopback import HostRule, is_loopback
from runtime.core.unix_socket import check_path, unlink_socket
from runtime.core.wsgi import (
    FrontLimits,
    ServerHandle,
    WsgiApp,
    serve_in_thread,
    serve_unix_in_thread,
)
from runtime.node.doors import AgentTokens, Door, with_door

ADMIN_SOCKET = "node.sock"
AGENT_SOCKET_MODE = 0o660  # the node's user and group: agents' users join the group
ADMIN_SOCKET_MODE = 0o600  # the node's user only
SOCKET_DIR_MODE = 0o755  # anyone may look up a socket; its own mode decides who connects


class DoorError(ValueError):
    """A door the node cannot open as asked; the message says what to change."""


@dataclass(frozen=True)
class DoorPlan:
    """Where the node will listen."""

    socket_dir: Path
    agents: tuple[str, ...]
    listen: tuple[str, int] | None
    tokens: AgentTokens
    allow_remote: bool = False
    # agent id -> the uids its socket serves, for agents whose file names a unix_user.
    peers: Mapping[str, frozenset[int]] = field(default_factory=dict)

    def agent_socket(self, agent_id: str) -> Path:
        """The socket of one agent."""
        return self.socket_dir / f"{agent_id}.sock"

    @property
    def admin_socket(self) -> Path:
        """The node-wide socket."""
        return self.socket_dir / ADMIN_SOCKET


@dataclass
class OpenDoors:
    """The running servers, and the socket files to remove when they stop."""

    tcp: ServerHandle | None = None
    unix: list[tuple[ServerHandle, Path, int]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every server (TCP first), then remove the socket files we bound."""
        servers = ([self.tcp] if self.tcp else []) + [handle for handle, _, _ in self.unix]
        for server in servers:
            server.stop()
        for _, path, inode in self.unix:
            unlink_socket(path, inode)


def parse_listen(listen: str) -> tuple[str, int] | None:
    """HOST:PORT (IPv6 in brackets or not) as (host, port); None for `off`."""
    if listen == "off":
        return None
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise DoorError(f"--listen {listen!r}: expected HOST:PORT (port 0 = any) or off")
    return host, int(port)


def plan_doors(
    socket_dir: Path,
    agents: list[str],
    listen: str,
    tokens: AgentTokens,
    *,
    allow_remote: bool,
    unix_users: Mapping[str, str] | None = None,
) -> DoorPlan:
    """Check the doors asked for; raise DoorError saying what to change.

    `unix_users` maps an agent id to the `unix_user` of its file, when it names one.
    """
    peers = allowed_peers(unix_users or {})
    plan = DoorPlan(socket_dir, tuple(agents), parse_listen(listen), tokens, allow_remote, peers)
    for path in (plan.admin_socket, *map(plan.agent_socket, agents)):
        try:
            check_path(path)
        except ValueError as exc:
            raise DoorError(str(exc)) from None
    if plan.listen is not None and not _loopback_address(plan.listen[0]):
        if not allow_remote:
            raise DoorError(
                f"--listen {listen}: not a loopback address; agents on other machines need"
                " --allow-remote-agents and agent tokens (commander-node agent-token)"
            )
        if not tokens.agents():
            raise DoorError(
                f"--listen {listen} with --allow-remote-agents: no agent has a token in"
                f" {tokens.path}; make one with `commander-node agent-token AGENT_ID`"
            )
    return plan


def allowed_peers(unix_users: Mapping[str, str]) -> dict[str, frozenset[int]]:
    """agent id -> uids its socket serves: its user's, root's and the node's own."""
    peers: dict[str, frozenset[int]] = {}
    for agent_id, user in unix_users.items():
        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            raise DoorError(
                f"agent {agent_id}: unix_user {user!r} is no user on this machine;"
                f" create it, or fix unix_user in agents/{agent_id}.yaml"
            ) from None
        # The node's user runs admin tools and tests; root may read its files anyway.
        peers[agent_id] = frozenset({uid, 0, os.geteuid()})
    return peers


def _loopback_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.lower().removesuffix(".") == "localhost"
    return is_loopback(host, bracketed=":" in host)


def open_doors(app: WsgiApp, plan: DoorPlan, limits: FrontLimits) -> OpenDoors:
    """Make the socket directory if missing, bind every socket, start every server."""
    doors = OpenDoors()
    try:
        _make_socket_dir(plan.socket_dir)
        admin = Door("admin", admin_socket=str(plan.admin_socket))
        _serve_unix(doors, with_door(app, admin), plan.admin_socket, ADMIN_SOCKET_MODE, limits)
        for agent_id in plan.agents:
            peers = plan.peers.get(agent_id)
            door = with_door(app, Door("agent", agent_id, str(plan.admin_socket), peers=peers))
            _serve_unix(doors, door, plan.agent_socket(agent_id), AGENT_SOCKET_MODE, limits)
        if plan.listen is not None:
            host, port = plan.listen
            rule = HostRule(host if plan.allow_remote else None)
            tcp = Door("tcp", None, str(plan.admin_socket), plan.tokens, rule)
            doors.tcp = serve_in_thread(with_door(app, tcp), host, port, limits=limits)
    except BaseException:
        doors.stop()
        raise
    return doors


def _make_socket_dir(path: Path) -> None:
    """Create the directory 0755 (whatever the umask); one that exists keeps its mode."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, SOCKET_DIR_MODE)


def _serve_unix(doors: OpenDoors, app: WsgiApp, path: Path, mode: int, limits: FrontLimits) -> None:
    name = path.stem
    handle = serve_unix_in_thread(
        app, path, mode=mode, threads=4, name=f"sock-{name}", limits=limits
    )
    doors.unix.append((handle, path, os.lstat(path).st_ino))
