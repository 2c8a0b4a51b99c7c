"""A private CA made as an operator makes it (`commander-relay tls`), and a relay.yaml using it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import REPO


def relay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `commander-relay ARGS` as its own process."""
    command = [sys.executable, "-m", "relay_app.cli", *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def make_ca(directory: Path, *hosts: str, name: str = "relay") -> Path:
    """`tls init` then `tls issue NAME --host ...` in `directory`; return the directory."""
    made = relay_cli("tls", "init", "--dir", str(directory))
    assert made.returncode == 0, made.stderr
    host_args = [arg for host in hosts for arg in ("--host", host)]
    issued = relay_cli("tls", "issue", name, "--dir", str(directory), *host_args)
    assert issued.returncode == 0, issued.stderr
    return directory


def use_tls(config_dir: Path, tls_dir: Path, port: int | None = None, **relay: str) -> None:
    """Give relay.yaml the relay's certificate and key and the CA (and an https endpoint)."""
    path = config_dir / "relay.yaml"
    data = yaml.safe_load(path.read_text())
    data.setdefault("relay", {}).update(
        {
            "tls_cert_file": str(tls_dir / "relay.pem"),
            "tls_key_file": str(tls_dir / "relay.key"),
            "ca_file": str(tls_dir / "ca.pem"),
            **relay,
        }
    )
    for node in data["nodes"]:
        if node.get("role") == "storage" and port is not None:
            node["sync_endpoint"] = f"https://127.0.0.1:{port}/sync/messages"
    path.write_text(yaml.safe_dump(data))
