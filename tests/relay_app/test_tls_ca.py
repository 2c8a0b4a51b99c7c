"""`commander-relay tls init` / `tls issue`: a chain Python's ssl verifies, files that stay private.

And a certificate or key the relay cannot use stops it with exit 2 and a clear line,
never a traceback.
"""

from __future__ import annotations

import grp
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from relay_app.cli import load_relay_config
from relay_app.tls_cli import warn_about_tls
from runtime.core.check_config import main as check_config_main
from runtime.core.tls import load_server_context
from tests.relay_app.helpers import write_config
from tests.relay_app.tls_helpers import make_ca, relay_cli, use_tls


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    """A CA and a relay certificate for 127.0.0.1 and relay.home.arpa."""
    return make_ca(tmp_path / "tls", "127.0.0.1", "relay.home.arpa")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def tls_port(ca: Path) -> Iterator[int]:
    """A bare TLS server with the issued certificate, accepting handshakes on 127.0.0.1."""
    context = load_server_context(ca / "relay.pem", ca / "relay.key", "test")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at teardown
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.close()


def handshake(port: int, ca_file: Path, server_hostname: str) -> bytes:
    """Connect to 127.0.0.1:port, verify as Python's default client would, read."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # noqa: SIM117
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.recv(5)


def test_the_chain_verifies_for_each_host_it_names_and_for_no_other(
    ca: Path, tls_port: int, tmp_path: Path
) -> None:
    assert handshake(tls_port, ca / "ca.pem", "127.0.0.1") == b"hello"
    assert handshake(tls_port, ca / "ca.pem", "relay.home.arpa") == b"hello"
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(tls_port, ca / "ca.pem", "other.home.arpa")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(tls_port, ca / "ca.pem", "127.0.0.2")
    other = make_ca(tmp_path / "other-ca", "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        handshake(tls_port, other / "ca.pem", "127.0.0.1")


def test_the_certificates_carry_what_clients_check(ca: Path) -> None:
    root = x509.load_pem_x509_certificate((ca / "ca.pem").read_bytes())
    leaf = x509.load_pem_x509_certificate((ca / "relay.pem").read_bytes())
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert (root.not_valid_after_utc - root.not_valid_before_utc).days > 3650
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["relay.home.arpa"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 826


def test_keys_are_private_and_nothing_is_overwritten_without_force(ca: Path) -> None:
    assert (mode(ca / "ca.key"), mode(ca / "relay.key")) == (0o600, 0o600)
    assert (mode(ca / "ca.pem"), mode(ca / "relay.pem")) == (0o644, 0o644)
    before = (ca / "ca.key").read_bytes()
    again = relay_cli("tls", "init", "--dir", str(ca))
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert (ca / "ca.key").read_bytes() == before
    reissue = relay_cli("tls", "issue", "relay", "--dir", str(ca), "--host", "127.0.0.1")
    assert reissue.returncode == 1
    assert "exist" in reissue.stderr
    forced = relay_cli("tls", "issue", "relay", "--dir", str(ca), "--host", "::1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "tls_cert_file:" in forced.stdout
    assert "https://[::1]:8001/sync/messages" in forced.stdout


def test_a_group_may_read_the_key_when_asked(ca: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name  # a group this user may give files to
    issued = relay_cli("tls", "issue", "g", "--dir", str(ca), "--host", "h", "--group", group)
    assert issued.returncode == 0, issued.stderr
    assert mode(ca / "g.key") == 0o640
    assert (ca / "g.key").stat().st_gid == os.getgid()
    missing = relay_cli(
        "tls", "issue", "x", "--dir", str(ca), "--host", "h", "--group", "no-such-group-z"
    )
    assert (missing.returncode, "no such group" in missing.stderr) == (1, True)
    assert not (ca / "x.key").exists()


def test_the_key_may_go_to_a_secrets_directory(ca: Path, tmp_path: Path) -> None:
    key = tmp_path / "secrets" / "htpc.key"
    issued = relay_cli(
        "tls", "issue", "htpc", "--dir", str(ca), "--host", "10.0.0.42", "--key-file", str(key)
    )
    assert issued.returncode == 0, issued.stderr
    assert (ca / "htpc.pem").exists()
    assert not (ca / "htpc.key").exists()
    assert mode(key) == 0o600
    assert f"tls_key_file: {key}" in issued.stdout
    context = load_server_context(ca / "htpc.pem", key, "test")  # the pair matches
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    clash = relay_cli("tls", "issue", "x", "--dir", str(ca), "--host", "h",
                      "--key-file", str(ca / "ca.key"), "--force")  # fmt: skip
    assert clash.returncode == 1
    assert "CA's own file" in clash.stderr


def test_issue_without_a_ca_says_to_run_init(tmp_path: Path) -> None:
    issued = relay_cli("tls", "issue", "relay", "--dir", str(tmp_path), "--host", "h")
    assert issued.returncode == 1
    assert "tls init" in issued.stderr


def serve_exit(config: Path, tmp_path: Path) -> tuple[int, str]:
    """Run `commander-relay serve` with this config; return its exit code and stderr."""
    ran = relay_cli(
        "serve", "--config", str(config), "--port", "0", "--data-dir", str(tmp_path / "d")
    )
    return ran.returncode, ran.stderr


def test_a_key_that_does_not_match_the_certificate_stops_the_relay_with_exit_2(
    ca: Path, tmp_path: Path
) -> None:
    relay_cli("tls", "issue", "other", "--dir", str(ca), "--host", "127.0.0.1")
    config = write_config(tmp_path / "config")
    use_tls(config.parent, ca, tls_key_file=str(ca / "other.key"))
    code, err = serve_exit(config, tmp_path)
    assert code == 2
    assert "KEY_VALUES_MISMATCH" in err
    assert "relay.tls_cert_file" in err
    assert "Traceback" not in err
    assert check_config_main([str(config.parent)]) == 1


def test_an_unreadable_certificate_stops_the_relay_with_exit_2(ca: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    use_tls(config.parent, ca, tls_cert_file=str(ca / "missing.pem"))
    code, err = serve_exit(config, tmp_path)
    assert code == 2
    assert "missing.pem" in err
    assert "Traceback" not in err


def test_a_certificate_without_its_key_is_a_config_problem(ca: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config")
    data = yaml.safe_load(config.read_text())
    data["relay"]["tls_cert_file"] = str(ca / "relay.pem")
    config.write_text(yaml.safe_dump(data))
    code, err = serve_exit(config, tmp_path)
    assert code == 2
    assert "relay.tls_key_file" in err
    assert "Traceback" not in err
    assert check_config_main([str(config.parent)]) == 1


def test_serving_plain_http_beyond_loopback_is_said_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_relay_config(str(write_config(tmp_path / "config")))
    warn_about_tls(config, "127.0.0.1")
    assert not caplog.records
    warn_about_tls(config, "0.0.0.0")
    assert "plain HTTP on 0.0.0.0" in caplog.text
    assert "tls init" in caplog.text


def test_check_config_accepts_a_working_tls_setup(
    ca: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "config")
    use_tls(config.parent, ca)
    assert check_config_main([str(config.parent)]) == 0, capsys.readouterr().err
