"""`commander-relay`: serve in the foreground, stop cleanly, add nodes, hash passwords."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from relay_app.auth import token_sha256
from relay_app.cli import listen_address, load_relay_config, main
from relay_app.passwords import hash_password, verify_password
from runtime.core.token_files import write_private
from tests.relay_app.helpers import NODE_A, TOKENS, write_config
from tests.support import Daemon

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_address_serves_and_exits_0_on_a_signal(
    tmp_path: Path, signum: int
) -> None:
    config = write_config(tmp_path / "config")
    relay = Daemon(
        ["-m", "relay_app.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
         "--port", "0", "--data-dir", str(tmp_path / "data")],
        tmp_path / "relay.log",
    )  # fmt: skip
    try:
        assert relay.url.startswith("http://127.0.0.1:")
        headers = {"X-Commander-Node": NODE_A, "Authorization": f"Bearer {TOKENS[NODE_A]}"}
        response = requests.get(relay.url + "/query/messages", headers=headers, timeout=10)
        assert response.json()["total"] == 0
        relay.proc.send_signal(signum)
        assert relay.proc.wait(30) == 0
    finally:
        relay.kill()
    assert (tmp_path / "data" / "messages" / "cluster_messages.db").exists()


def test_serve_without_a_config_uses_the_embedded_defaults(tmp_path: Path) -> None:
    hashes = tmp_path / "hashes.yaml"
    hashes.write_text(f"{NODE_A}: {token_sha256('t')}\n")
    relay = Daemon(
        ["-m", "relay_app.cli", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--token-hashes-file", str(hashes)],
        tmp_path / "relay.log",
    )  # fmt: skip
    try:
        assert relay.url.startswith("http://127.0.0.1:")
        headers = {"X-Commander-Node": NODE_A, "Authorization": "Bearer t"}
        assert requests.get(relay.url + "/query/status", headers=headers, timeout=10).ok
    finally:
        assert relay.terminate() == 0


def test_the_embedded_data_dir_is_relative_to_the_working_directory() -> None:
    config = load_relay_config(None)
    assert config.relay.data_dir == "./data/relay"
    assert listen_address(config, None, None) == ("127.0.0.1", 8001)


def test_flags_override_the_config_and_the_storage_node_gives_the_default_address(
    tmp_path: Path,
) -> None:
    root = tmp_path / "config"
    root.mkdir()
    (root / "relay.yaml").write_text(
        'nodes:\n  - {id: "htpc", host: "10.9.9.9", port: 8123, role: "storage"}\n'
        'relay:\n  data_dir: "/srv/corpus"\n  token_hashes_file: "hashes.yaml"\n'
    )
    config = load_relay_config(str(root / "relay.yaml"))
    assert config.relay.data_dir == "/srv/corpus"
    assert listen_address(config, None, None) == ("10.9.9.9", 8123)
    assert listen_address(config, "127.0.0.1", 0) == ("127.0.0.1", 0)
    overridden = load_relay_config(str(root), data_dir=str(tmp_path / "d"))
    assert overridden.relay.data_dir == str(tmp_path / "d")


def test_a_bad_config_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "config"
    root.mkdir()
    (root / "relay.yaml").write_text("nodes: []\nrelay:\n  port: 'eighty'\n")
    assert main(["serve", "--config", str(root / "relay.yaml"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "relay.port" in err
    assert "nodes" in err


def test_add_node_writes_a_private_token_and_records_its_hash(tmp_path: Path) -> None:
    hashes = tmp_path / "etc" / "hashes.yaml"
    hashes.parent.mkdir()
    hashes.write_text(f"node-old: {token_sha256('old')}\n")
    token_file = tmp_path / "secrets" / "node-a.token"
    argv = ["add-node", "node-a", "--token-hashes-file", str(hashes), "--token-file"]
    assert main([*argv, str(token_file)]) == 0
    token = token_file.read_text()
    assert len(token) >= 40
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    recorded = yaml.safe_load(hashes.read_text())
    assert recorded == {"node-old": token_sha256("old"), "node-a": token_sha256(token)}
    assert main([*argv, str(token_file)]) == 1  # no silent rotation
    assert main([*argv, str(token_file), "--force"]) == 0
    assert token_file.read_text() != token


def test_add_node_finds_the_hashes_file_through_the_config(tmp_path: Path) -> None:
    root = tmp_path / "config"
    root.mkdir()
    (root / "relay.yaml").write_text(
        'nodes:\n  - {id: "a", host: "127.0.0.1", port: 9}\nrelay:\n  token_hashes_file: "h.yaml"\n'
    )
    argv = ["add-node", "a", "--config", str(root / "relay.yaml")]
    assert main([*argv, "--token-file", str(tmp_path / "t")]) == 0
    assert "a" in yaml.safe_load((root / "h.yaml").read_text())
    assert main(["add-node", "../evil", "--token-file", str(tmp_path / "u")]) == 2


def test_hash_password_reads_stdin_and_prints_a_verifiable_hash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay_app.cli", "hash-password"],
        input="correct horse\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    encoded = result.stdout.strip()
    assert encoded.startswith("scrypt$")
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse\n", encoded)


def test_password_hashes_verify_only_the_right_password_and_sane_parameters() -> None:
    encoded = hash_password("s3cret")
    assert verify_password("s3cret", encoded)
    assert not verify_password("S3cret", encoded)
    assert hash_password("s3cret") != encoded  # salted
    n, r, p, salt, key = encoded.split("$")[1:]
    assert not verify_password("s3cret", f"scrypt${2**30}${r}${p}${salt}${key}")
    assert not verify_password("s3cret", f"scrypt$1000${r}${p}${salt}${key}")
    for broken in ("", "plain", "scrypt$1$2$3", f"scrypt${n}${r}${p}$!!$@@"):
        assert not verify_password("s3cret", broken)


def hash_password_out(out: Path) -> subprocess.CompletedProcess[str]:
    """`commander-relay hash-password --out OUT` with a password on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "relay_app.cli", "hash-password", "--out", str(out)],
        input="correct horse\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_hash_password_out_onto_a_world_readable_file_makes_it_private(tmp_path: Path) -> None:
    out = tmp_path / "operator-password.hash"
    out.write_text("")  # an operator's `touch` under umask 002
    out.chmod(0o664)
    assert hash_password_out(out).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o660  # its group kept, others dropped
    assert verify_password("correct horse", out.read_text().strip())


def test_a_secret_is_never_written_through_a_link_planted_at_its_temporary_name(
    tmp_path: Path,
) -> None:
    # A directory another user may write to (a shared /tmp, a group-writable secrets/):
    # the secret must not land in the file a link names, nor give it the secret's mode.
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    path = tmp_path / "secret"
    planted = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    planted.symlink_to(victim)
    write_private(path, "s3cret")
    assert victim.read_text() == "untouched"
    assert path.read_text() == "s3cret"
    assert not path.is_symlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
