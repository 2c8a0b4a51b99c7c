"""Open and close the node's doors: one Unix socket per agent, node.sock, loopback TCP.

`plan_doors` checks everything that can be wrong before any actor starts (socket
paths too long, a non-loopback listen address without its flag or any agent token),
so the daemon exits 2 with a message instead of failing half started.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from runtime.loopback import HostRule, is_loopback
from runtime.node_doors import AgentTokens, Door, with_door
from runtime.unix_socket import check_path, unlink_socket
from runtime.wsgi import FrontLimits, ServerHandle, WsgiApp, serve_in_thread, serve_unix_in_thread

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
) -> DoorPlan:
    """Check the doors asked for; raise DoorError saying what to change."""
    plan = DoorPlan(socket_dir, tuple(agents), parse_listen(listen), tokens, allow_remote)
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
            door = with_door(app, Door("agent", agent_id, str(plan.admin_socket)))
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
