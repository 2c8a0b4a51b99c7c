"""Who may use a running node's agent API: sockets, tokens, browsers, listen addresses.

Real `commander-node` processes, real Unix sockets and TCP; a write from another Unix
user runs as a user made for the test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runtime.core.errors import CommanderError, InvalidMessage
from runtime.core.token_files import agent_hashes_path, token_sha256, write_sha256_table
from runtime.node.client import NodeAdmin, NodeClient
from runtime.node.unix_http import BASE_URL, unix_session
from tests.runtime.test_daemon import NODE, write_config
from tests.support import REPO, Daemon

TOKENS = {"a1": "token-of-a1", "a2": "token-of-a2"}
JSON = {"Content-Type": "application/json"}
BODY = b'{"content": "from a web page"}'


def start(tmp_path: Path, *extra: str) -> Daemon:
    """`commander-node` with agents a1 and a2, tokens for both, on 127.0.0.1:0."""
    config = tmp_path / "config"
    if not config.exists():
        write_config(config)
        hashes = {agent: token_sha256(token) for agent, token in TOKENS.items()}
        write_sha256_table(agent_hashes_path(config), hashes)
    args = ["-m", "runtime.node.daemon", "--config", str(config), "--node-id", NODE,
            "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0", *extra]  # fmt: skip
    return Daemon(args, tmp_path / "node.log")


def run_node(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`commander-node` expected to refuse to start: its exit status and output."""
    config = tmp_path / "config"
    if not config.exists():
        write_config(config)
    args = [sys.executable, "-m", "runtime.node.daemon", "--config", str(config), "--node-id", NODE,
            "--data-dir", str(tmp_path / "data"), *extra]  # fmt: skip
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Daemon]:
    daemon = start(tmp_path)
    try:
        yield daemon
    finally:
        daemon.terminate()


def stored(node: Daemon) -> dict[str, int]:
    """Messages cached per agent, as node.sock tells."""
    agents = NodeAdmin(node.sockets).status()["agents"]
    return {a["agent_id"]: a["cache"]["message_count"] for a in agents}


def test_over_tcp_only_the_agents_own_token_writes_and_every_failure_reads_alike(
    node: Daemon,
) -> None:
    url = f"{node.url}/agents/a1/messages"
    refused = [
        requests.post(url, json={"content": 1}, headers=headers, timeout=10)
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a1"},
                        {"Authorization": f"Bearer {TOKENS['a2']}"})
    ]  # fmt: skip
    ghost = requests.post(
        f"{node.url}/agents/ghost/messages", json={"content": 1}, timeout=10,
        headers={"Authorization": f"Bearer {TOKENS['a1']}"},
    )  # fmt: skip
    assert {r.status_code for r in [*refused, ghost]} == {401}
    assert len({r.text for r in [*refused, ghost]}) == 1  # unknown, wrong, missing: one text
    assert refused[0].headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(node) == {"a1": 0, "a2": 0}
    client = NodeClient(node.url, "a1", token=TOKENS["a1"])
    assert client.write("over tcp")
    assert client.status()["cache"]["message_count"] == 1
    with pytest.raises(CommanderError, match="token"):
        NodeClient(node.url, "a1")


def test_node_wide_routes_over_tcp_are_refused_naming_the_admin_socket(node: Daemon) -> None:
    token = {"Authorization": f"Bearer {TOKENS['a1']}"}
    for method, path in (("GET", "/status"), ("POST", "/outbox/retry-failed")):
        answer = requests.request(method, node.url + path, headers=token, timeout=10)
        assert answer.status_code == 403
        assert "node.sock" in answer.json()["error"]
    assert NodeAdmin(node.sockets).retry_failed() == {"retried": {"a1": 0, "a2": 0},
                                                      "unavailable": {}}  # fmt: skip


def test_a_cross_origin_text_plain_post_and_a_rebound_host_store_nothing(node: Daemon) -> None:
    url = f"{node.url}/agents/a1/messages"
    token = {"Authorization": f"Bearer {TOKENS['a1']}"}
    # What a web page can send without a CORS preflight: no token, text/plain, an Origin.
    page = {"Content-Type": "text/plain", "Origin": "https://evil.example",
            "Sec-Fetch-Site": "cross-site"}  # fmt: skip
    assert requests.post(url, data=BODY, headers=page, timeout=10).status_code in (401, 403)
    # Even with the token each rule holds on its own.
    cases = [
        ({**token, "Content-Type": "text/plain"}, 415),
        ({**token, **JSON, "Origin": "null"}, 403),
        ({**token, **JSON, "Sec-Fetch-Site": "same-site"}, 403),
        ({**token, **JSON, "Host": "rebound.example:8002"}, 403),
        ({**token, **JSON, "Host": "localhost.rebound.example"}, 403),
        ({**token, **JSON, "Host": "127.0.0.1.nip.io"}, 403),
    ]
    for headers, status in cases:
        answer = requests.post(url, data=BODY, headers=headers, timeout=10)
        assert answer.status_code == status, (headers, answer.text)
    assert requests.get(node.url + "/healthz", headers={"Host": "evil.example"}).status_code == 403
    assert stored(node) == {"a1": 0, "a2": 0}
    for host in ("LOCALHOST:8002", "localhost.", "127.0.0.2", "[::1]:8002"):
        answer = requests.post(url, data=BODY, headers={**token, **JSON, "Host": host}, timeout=10)
        assert answer.status_code == 201, (host, answer.text)


def test_an_http_1_0_request_without_host_is_refused_over_tcp(node: Daemon) -> None:
    with socket.create_connection(node.address, timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 403") or head.startswith(b"HTTP/1.0 403"), head


def test_the_socket_rules_hold_too_and_sec_fetch_site_none_passes(node: Daemon) -> None:
    a1 = unix_session(node.socket_path("a1"))
    url = f"{BASE_URL}/agents/a1/messages"
    assert a1.post(url, data=BODY, headers={"Content-Type": "text/plain"}).status_code == 415
    assert a1.post(url, data=BODY, headers={**JSON, "Origin": "null"}).status_code == 403
    charset = {"Content-Type": "application/json; charset=latin-1"}
    assert a1.post(url, data=BODY, headers=charset).status_code == 415
    typed = {"Content-Type": "Application/JSON; charset=UTF-8", "Sec-Fetch-Site": "none"}
    assert a1.post(url, data=BODY, headers=typed).status_code == 201


def test_an_agents_socket_reaches_only_that_agent(node: Daemon) -> None:
    a1 = unix_session(node.socket_path("a1"))
    for method, path in (("GET", "/agents/a2/status"), ("POST", "/agents/a2/messages"),
                         ("GET", "/status"), ("POST", "/outbox/retry-failed")):  # fmt: skip
        answer = a1.request(method, BASE_URL + path, json={"content": 1}, timeout=10)
        assert answer.status_code == 403, (path, answer.text)
    assert a1.get(f"{BASE_URL}//agents/a2/status", timeout=10).status_code == 404
    assert a1.get(f"{BASE_URL}/healthz", timeout=10).status_code == 200
    other = NodeClient(node.socket_path("a1"), "a2")  # a2's client pointed at a1's socket
    with pytest.raises(CommanderError, match="403"):
        other.write("as a2")
    assert stored(node) == {"a1": 0, "a2": 0}


def test_sender_impersonation_over_the_socket_is_refused_naming_sender(node: Daemon) -> None:
    client = NodeClient(node.sockets, "a1")
    with pytest.raises(InvalidMessage) as refused:
        client.write("hi", sender="operator")
    assert refused.value.field == "sender"
    assert client.write("hi", sender="a1", recipient="operator")
    assert stored(node) == {"a1": 1, "a2": 0}


def test_sockets_have_their_modes_and_are_removed_at_stop(tmp_path: Path) -> None:
    sockets = tmp_path / "data" / "sockets"
    sockets.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sockets / "a1.sock"))  # left by a crash: nobody listens
    stale.close()
    daemon = start(tmp_path)
    try:
        assert stat.S_IMODE(os.stat(sockets / "a1.sock").st_mode) == 0o660
        assert stat.S_IMODE(os.stat(sockets / "node.sock").st_mode) == 0o600
        assert NodeClient(daemon.sockets, "a1").write("after a stale socket")
        clash = run_node(tmp_path, "--listen", "off")
        assert clash.returncode == 2
        assert "another" in clash.stderr
    finally:
        assert daemon.terminate() == 0
    assert sorted(os.listdir(sockets)) == []


def test_a_made_socket_directory_is_0755(tmp_path: Path) -> None:
    daemon = start(tmp_path, "--socket-dir", str(tmp_path / "made" / "here"))
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "made" / "here").st_mode) == 0o755
    finally:
        daemon.terminate()


def test_a_socket_path_too_long_exits_2_with_a_message(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    result = run_node(tmp_path, "--socket-dir", str(deep), "--listen", "127.0.0.1:0")
    assert result.returncode == 2
    assert "107" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_non_loopback_listen_needs_the_flag_and_a_token(tmp_path: Path) -> None:
    without_flag = run_node(tmp_path, "--listen", "0.0.0.0:0")
    assert without_flag.returncode == 2
    assert "--allow-remote-agents" in without_flag.stderr
    without_token = run_node(tmp_path, "--listen", "0.0.0.0:0", "--allow-remote-agents")
    assert without_token.returncode == 2
    assert "agent-token" in without_token.stderr
    for result in (without_flag, without_token):
        assert "Traceback" not in result.stderr


def test_with_the_flag_and_a_token_the_listen_address_is_a_host_too(tmp_path: Path) -> None:
    write_config(tmp_path / "config")
    write_sha256_table(agent_hashes_path(tmp_path / "config"), {"a1": token_sha256("t1")})
    daemon = start(tmp_path, "--listen", "0.0.0.0:0", "--allow-remote-agents")
    try:
        _, port = daemon.address
        url = f"http://127.0.0.1:{port}/agents/a1/messages"
        token = {"Authorization": "Bearer t1", **JSON}
        for host, status in (("192.0.2.7", 201), ("rebound.example", 403)):
            answer = requests.post(url, data=BODY, headers={**token, "Host": host}, timeout=10)
            assert answer.status_code == status, (host, answer.text)
    finally:
        daemon.terminate()


# A write from another Unix user, for the agent its socket is named for: stdlib only
# (the venv's Python lives under /root). Prints the whole answer.
OTHER_USER_CLIENT = """
import pathlib, socket, sys
sock = socket.socket(socket.AF_UNIX)
try:
    sock.connect(sys.argv[1])
except OSError as exc:
    print(f"refused: {exc.strerror}")
    sys.exit(3)
agent = pathlib.Path(sys.argv[1]).stem.encode()
body = b'{"content": "from another user"}'
sock.sendall(b"POST /agents/%s/messages HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json"
             b"\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s"
             % (agent, len(body), body))
answer = b""
while part := sock.recv(4096):
    answer += part
print(answer.decode())
"""


@contextlib.contextmanager
def made_users(count: int) -> Iterator[list[str]]:
    """`count` system users made for one test, deleted after it."""
    if os.geteuid() != 0:
        reason = "making a Unix user needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI runs as root")
        pytest.skip(reason)
    names: list[str] = []
    try:
        for _ in range(count):
            name = f"cmdt{uuid.uuid4().hex[:8]}"
            command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
            subprocess.run([*command, name], check=True, capture_output=True)
            names.append(name)
        yield names
    finally:
        for name in names:
            subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def other_user() -> Iterator[str]:
    """A system user made for this test, deleted after it."""
    with made_users(1) as names:
        yield names[0]


@pytest.fixture
def two_users() -> Iterator[list[str]]:
    """Two system users made for this test, deleted after it."""
    with made_users(2) as names:
        yield names


def as_user(
    user: str, socket_path: Path, group: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the stdlib client as `user`, with its own group unless `group` is given."""
    python = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    gid = pwd.getpwnam(user).pw_gid if group is None else group  # else it keeps root's group
    args = [python, "-c", OTHER_USER_CLIENT, str(socket_path)]
    return subprocess.run(args, user=user, group=gid, extra_groups=[], cwd="/",
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip


def test_a_write_from_another_unix_user_is_refused(tmp_path: Path, other_user: str) -> None:
    # A directory anyone may traverse, so that only the socket's own mode decides.
    sockets = Path(tempfile.mkdtemp(prefix="cmd-", dir="/tmp"))
    os.chmod(sockets, 0o755)
    daemon = start(tmp_path, "--socket-dir", str(sockets))
    try:
        refused = as_user(other_user, sockets / "a1.sock")
        assert refused.returncode == 3, refused
        assert "Permission denied" in refused.stdout
        # The same user in the node's group connects: the mode, not the path, refused it.
        allowed = as_user(other_user, sockets / "a1.sock", group=os.getegid())
        assert allowed.stdout.startswith("HTTP/1.1 201"), allowed
        admin = as_user(other_user, sockets / "node.sock", group=os.getegid())
        assert admin.returncode == 3, admin  # node.sock is the node's user's alone
        assert stored(daemon) == {"a1": 1, "a2": 0}
    finally:
        daemon.terminate()
        with contextlib.suppress(OSError):
            shutil.rmtree(sockets)


def test_agent_token_makes_a_private_token_the_running_node_takes(node: Daemon) -> None:
    config = Path(node.args[node.args.index("--config") + 1])
    token_file = config.parent / "a2.token"
    command = [sys.executable, "-m", "runtime.node.daemon", "agent-token", "a2", "--config",
               str(config), "--token-file", str(token_file)]  # fmt: skip
    made = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert subprocess.run(command, cwd=REPO, capture_output=True, check=False).returncode == 1
    client = NodeClient(node.url, "a2", token=token_file.read_text().strip())
    assert client.write("with a fresh token, no restart")
    old = requests.post(f"{node.url}/agents/a2/messages", json={"content": 1}, timeout=10,
                        headers={"Authorization": f"Bearer {TOKENS['a2']}"})  # fmt: skip
    assert old.status_code == 401  # the token it replaced
    status = subprocess.run(
        [sys.executable, "-m", "runtime.node.daemon", "status", "--socket-dir",
         node.sockets.removeprefix("unix:")], cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert '"node_id": "node-a"' in status.stdout


def test_agent_token_gives_the_token_file_to_the_agents_user(
    tmp_path: Path, other_user: str
) -> None:
    token_file = tmp_path / "t"
    command = [sys.executable, "-m", "runtime.node.daemon", "agent-token", "a1", "--config",
               str(tmp_path / "config"), "--token-file", str(token_file), "--owner"]  # fmt: skip
    made = subprocess.run([*command, other_user], cwd=REPO, capture_output=True, check=False)
    assert made.returncode == 0, made.stderr
    assert token_file.stat().st_uid == pwd.getpwnam(other_user).pw_uid
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    unknown = subprocess.run([*command, "no-such-user-here"], cwd=REPO, capture_output=True,
                             text=True, check=False)  # fmt: skip
    assert unknown.returncode == 2
    assert "no such user" in unknown.stderr


def name_unix_user(config: Path, agent_id: str, user: str) -> None:
    """Add `unix_user` to an agent's file."""
    path = config / "agents" / f"{agent_id}.yaml"
    path.write_text(path.read_text() + f'unix_user: "{user}"\n')


def test_an_agents_unix_user_alone_writes_on_its_socket_and_the_others_keep_the_mode_rule(
    tmp_path: Path, two_users: list[str]
) -> None:
    first, second = two_users
    name_unix_user(write_config(tmp_path / "config"), "a1", first)
    sockets = Path(tempfile.mkdtemp(prefix="cmd-", dir="/tmp"))
    os.chmod(sockets, 0o755)
    daemon = start(tmp_path, "--socket-dir", str(sockets))
    group = os.getegid()  # both users in the node's group: the socket's mode lets both in
    try:
        own = as_user(first, sockets / "a1.sock", group)
        assert own.stdout.startswith("HTTP/1.1 201"), own
        stranger = as_user(second, sockets / "a1.sock", group)
        assert stranger.stdout.startswith("HTTP/1.1 403"), stranger
        assert "unix_user" in stranger.stdout
        assert first not in stranger.stdout  # the rule is named, not the account to take
        for user in (first, second):  # a2 names no unix_user: the socket's mode decides
            answer = as_user(user, sockets / "a2.sock", group)
            assert answer.stdout.startswith("HTTP/1.1 201"), (user, answer)
        assert NodeClient(daemon.sockets, "a1").write("as root, the node's user here")
        assert stored(daemon) == {"a1": 2, "a2": 2}
    finally:
        daemon.terminate()
        shutil.rmtree(sockets, ignore_errors=True)


def test_an_unknown_unix_user_makes_the_node_exit_2_naming_it(tmp_path: Path) -> None:
    name_unix_user(write_config(tmp_path / "config"), "a2", "cmdt-nobody-here")
    result = run_node(tmp_path, "--listen", "off")
    assert result.returncode == 2
    assert "a2: unix_user 'cmdt-nobody-here' is no user on this machine" in result.stderr
    assert "Traceback" not in result.stderr
