"""Start project daemons as real OS processes on 127.0.0.1 and wait for them to listen.

Used by the tests that are about processes and by the benchmarks.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

LISTEN_RE = re.compile(r"listening on (https?://\S+)")
# A node also says where its agent sockets are (runtime.node.daemon).
SOCKETS_RE = re.compile(r"agent sockets in (unix:\S+)")
# The checkout: daemons run from it, so `python -m relay_app.cli` imports this tree.
REPO = Path(__file__).resolve().parents[2]


class Daemon:
    """A daemon process whose first 'listening on URL' line gives its address."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        timeout: float = 20.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.log = log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, *self.args], cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, env=env
        )
        self._sockets: list[str] = []
        self.url = self._wait_url(timeout)

    def _wait_url(self, timeout: float) -> str:
        found: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None

        def reader() -> None:
            for raw in stdout:
                if self.log.closed:
                    return
                self.log.write(raw)
                self.log.flush()
                line = raw.decode(errors="replace")
                match = LISTEN_RE.search(line)
                if match and not found:
                    found.append(match.group(1))
                sockets = SOCKETS_RE.search(line)
                if sockets:
                    self._sockets.append(sockets.group(1))

        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not found:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.args} exited {self.proc.returncode}; see {self.log_path}"
                )
            time.sleep(0.02)
        if not found:
            self.kill()
            raise RuntimeError(f"{self.args} did not listen within {timeout}s; see {self.log_path}")
        return found[0]

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the daemon's URL, for raw sockets."""
        host, _, port = self.url.split("://", 1)[1].rpartition(":")
        return host, int(port)

    @property
    def sockets(self) -> str:
        """A node's socket directory as a NodeClient address (`unix:DIR`)."""
        deadline = time.monotonic() + 5.0
        while not self._sockets and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._sockets:
            raise RuntimeError(f"{self.args} named no agent sockets; see {self.log_path}")
        return self._sockets[0]

    def socket_path(self, name: str) -> str:
        """The path of one of a node's sockets: an agent id, or `node` for node.sock."""
        return f"{self.sockets.removeprefix('unix:')}/{name}.sock"

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._close()

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        # The reader thread ends at EOF of stdout; the log is ours to close.
        time.sleep(0.05)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


def start_relay(config_dir: Path, data: Path, port: int, log: Path) -> Daemon:
    """`commander-relay serve` as its own process on 127.0.0.1:port."""
    args = ["-m", "relay_app.cli", "serve", "--config", str(config_dir / "relay.yaml"),
            "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)]  # fmt: skip
    return Daemon(args, log)


def start_node(
    config_dir: Path, node_id: str, data: Path, relay_url: str, log: Path, *extra: str
) -> Daemon:
    """`commander-node` as its own process, quick to notice the relay is back and to stop."""
    args = ["-m", "runtime.node.daemon", "--config", str(config_dir), "--node-id", node_id,
            "--data-dir", str(data), "--relay-url", relay_url, "--listen", "127.0.0.1:0",
            "--probe-interval", "0.2", "--shutdown-upload-seconds", "1", *extra]  # fmt: skip
    return Daemon(args, log)
