"""Run the quickstart as a real process and find, by PID, whatever it leaves behind."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = [sys.executable, "-m", "runtime.quickstart", "--config", str(REPO / "config")]


def quickstart_env() -> tuple[dict[str, str], list[int]]:
    """An environment with free ports for the relay and both nodes, and those ports."""
    ports = [free_port(), free_port(), free_port()]
    env = {
        **os.environ,
        "COMMANDER_RELAY_PORT": str(ports[0]),
        "COMMANDER_NODE_PORTS": f"{ports[1]},{ports[2]}",
        # What these tests are about does not depend on the free disk of the machine.
        "COMMANDER_MIN_FREE_BYTES": str(1024 * 1024),
        "PYTHONUNBUFFERED": "1",
    }
    return env, ports


@contextlib.contextmanager
def quickstart(cwd: Path, env: dict[str, str], *args: str, **popen: Any) -> Iterator[Any]:
    """The quickstart running in `cwd`; on every way out, it and all it started are gone."""
    proc = subprocess.Popen([*QUICKSTART, *args], cwd=cwd, env=env, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        # The test's own failure path: nothing it started outlives it, whatever went wrong.
        for pid in debris(cwd):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


def debris(cwd: Path) -> list[int]:
    """The live processes (not zombies) working in `cwd`: the quickstart's daemons inherit it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            here = (entry / "cwd").resolve(strict=True)
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if here == cwd.resolve() and state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def taken(ports: list[int]) -> list[int]:
    """The ports among `ports` that something on 127.0.0.1 still holds."""
    held = []
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                held.append(port)
    return held
