"""`make run-cluster`: a node's message is on both relays and both inboxes; SIGTERM stops all."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from runtime.node.client import NodeClient
from runtime.quickstart.postgres import LocalPostgres
from runtime.quickstart.run import node_headers
from tests.runtime.quickstart_procs import REPO, debris, taken
from tests.support import free_port
from tests.support.postgres import require_postgres

pytestmark = pytest.mark.slow

CLUSTER = [sys.executable, "-m", "runtime.quickstart.cluster", "--config", str(REPO / "config")]
FIRST_NODE, FIRST_AGENT = "Gillsystems-Laptop", "commander-001"


@pytest.fixture
def workdir() -> Iterator[Path]:
    """Where the cluster command runs; outside pytest's 0700 tree: PostgreSQL's user enters it."""
    require_postgres()
    path = Path(tempfile.mkdtemp(prefix="commander-cluster-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_message_reaches_both_relays_and_sigterm_stops_everything(workdir: Path) -> None:
    ports = [free_port() for _ in range(4)]
    env = {
        **os.environ,
        "COMMANDER_RELAY_PORTS": f"{ports[0]},{ports[1]}",
        "COMMANDER_NODE_PORTS": f"{ports[2]},{ports[3]}",
        "COMMANDER_MIN_FREE_BYTES": str(1024 * 1024),
        "PYTHONUNBUFFERED": "1",
    }
    first, msg_id = _session(workdir, env, ports, None)
    assert "initdb" in first
    # A second run starts the same PostgreSQL cluster again: the message is still there.
    second, _ = _session(workdir, env, ports, msg_id)
    assert "initdb" not in second


def test_a_taken_relay_port_is_named_before_postgresql_starts(workdir: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**os.environ, "COMMANDER_RELAY_PORTS": f"{port},{free_port()}"}
        done = subprocess.run(
            CLUSTER, cwd=workdir, env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode != 0
    assert f"127.0.0.1:{port} is taken" in done.stderr
    assert "COMMANDER_RELAY_PORTS" in done.stderr
    assert not (workdir / "data" / "cluster" / "pg").exists()


def _session(
    workdir: Path, env: dict[str, str], ports: list[int], msg_id: str | None
) -> tuple[str, str]:
    """One run: write a message unless given one, read it from both relays, SIGTERM, check.

    Returns what the command printed and the message's id.
    """
    relays = [f"http://127.0.0.1:{port}" for port in ports[:2]]
    with _cluster(workdir, env) as (proc, lines):
        banner = _banner(lines, proc)
        msg_id = msg_id or _write_on_first_node(banner)
        secrets = workdir / "data" / "cluster" / "secrets"
        headers = node_headers({FIRST_NODE: secrets / f"{FIRST_NODE}.token"})
        found = [_read_back(relay, msg_id, headers) for relay in relays]
        pages = _inbox_pages(relays, (secrets / "operator-password.txt").read_text().strip())
        postgres = _postgres_processes(workdir)
        daemons = [pid for pid in debris(workdir) if pid != proc.pid]
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    output = banner + _drain(lines)
    assert [m["msg_id"] for m in found] == [msg_id, msg_id], output
    assert found[0]["content"] == found[1]["content"] == {"kind": "note", "title": "cluster test"}
    assert all("cluster test" in page for page in pages), pages
    assert code == 0, output
    assert output.count("(exit 0)") == 4, output  # two nodes, two relays
    assert "stopped postgresql" in output
    assert len(daemons) >= 4, daemons
    assert len(postgres) >= 2, postgres
    assert _alive(daemons + postgres) == [], output
    assert debris(workdir) == []
    assert taken(ports) == []
    return output, msg_id


@contextlib.contextmanager
def _cluster(
    cwd: Path, env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """The cluster command in the background (no terminal, no stdin), its output as lines.

    On every way out it is gone, and so is whatever it started, PostgreSQL included.
    """
    proc = subprocess.Popen(
        [*CLUSTER, "--interval", "3600"], cwd=cwd, env=env, text=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read, args=(proc, lines), daemon=True)
    reader.start()
    try:
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
        for pid in debris(cwd):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        LocalPostgres(cwd / "data" / "cluster" / "pg", cwd).shutdown("immediate")


def _read(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    """Every line the command prints, then an empty one once its output closed."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put("")


def _banner(lines: queue.Queue[str], proc: subprocess.Popen[str]) -> str:
    """The output up to the banner's last line: by then PostgreSQL, relays and nodes answer."""
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if "Logs and data:" in seen[-1]:
            return "".join(seen)
    raise AssertionError("no banner from the cluster command:\n" + "".join(seen))


def _write_on_first_node(banner: str) -> str:
    """Write one message as the first node's first agent, over its unix socket; its msg_id."""
    sockets = re.findall(r"--socket-dir (\S+)", banner) or ["none"]
    assert sockets[0].endswith(FIRST_NODE), banner
    client = NodeClient(f"unix:{sockets[0]}", FIRST_AGENT)
    try:
        return client.write({"kind": "note", "title": "cluster test"}, priority="normal")
    finally:
        client.close()


def _read_back(relay: str, msg_id: str, headers: dict[str, str]) -> dict[str, object]:
    """The message as `relay` serves it, once the node's uploader has brought it (10 s)."""
    deadline = time.monotonic() + 10
    while True:
        response = requests.get(f"{relay}/query/messages/{msg_id}", headers=headers, timeout=5)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, (relay, response.status_code, response.text)
            return dict(response.json())
        time.sleep(0.2)


def _inbox_pages(relays: list[str], password: str) -> list[str]:
    """Each relay's inbox page, in one operator session opened on the first relay."""
    session = requests.Session()
    login = session.post(
        relays[0] + "/messages/login",
        data={"user": "operator", "password": password},
        allow_redirects=False,
        timeout=30,
    )
    assert login.status_code == 303, login.text
    return [session.get(relay + "/messages", timeout=30).text for relay in relays]


def _postgres_processes(cwd: Path) -> list[int]:
    """The postmaster of the cluster's PostgreSQL and the processes it forked."""
    pid_file = cwd / "data" / "cluster" / "pg" / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    forked = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and int(_stat(entry.name)[1]) == postmaster:
                forked.append(int(entry.name))
    return [postmaster, *forked]


def _stat(pid: str) -> list[str]:
    """State and parent of a process, from /proc/<pid>/stat."""
    return (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()[:2]


def _alive(pids: list[int]) -> list[int]:
    """The PIDs among `pids` still running (a zombie is not running)."""
    alive = []
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            if _stat(str(pid))[0] not in ("Z", "X"):
                alive.append(pid)
    return alive


def _drain(lines: queue.Queue[str]) -> str:
    """What the command printed after its banner, up to the end of its output."""
    rest = []
    with contextlib.suppress(queue.Empty):
        while line := lines.get(timeout=10):
            rest.append(line)
    return "".join(rest)
