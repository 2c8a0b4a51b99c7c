"""A small private CA for a home cluster: one CA certificate, and server certificates under it.

Keys are ECDSA P-256 with SHA-256 signatures: what every OpenSSL, Python's `ssl`,
requests and every browser verify (Ed25519 server certificates are refused by
browsers, and the operator opens the inbox in one). The CA may sign server
certificates only (path length 0); a server certificate names its hosts as subject
alternative names (IP addresses as IP SANs), is for TLS servers only, and lasts 825
days, the most Apple's clients accept.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 20 * 365
SERVER_DAYS = 825
# Backdated a little: a node whose clock lags the relay host's still accepts a new certificate.
BACKDATE = datetime.timedelta(hours=1)
CA_CERT = "ca.pem"
CA_KEY = "ca.key"
PUBLIC_MODE = 0o644
PRIVATE_MODE = 0o600
GROUP_MODE = 0o640


class TlsFileError(Exception):
    """A file to write exists already, or one to read is missing or unusable."""


@dataclass(frozen=True)
class Issued:
    """A certificate written to disk, and its key."""

    cert: Path
    key: Path
    key_mode: int
    not_after: datetime.datetime


def init_ca(directory: Path, *, force: bool = False, name: str | None = None) -> Issued:
    """Make the CA key (mode 0600) and certificate (ca.pem) in `directory`."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    _refuse_existing([cert_path, key_path], force)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Commander"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, name or f"Commander CA ({socket.gethostname()})"
            ),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        _builder(subject, subject, key.public_key(), now, now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    _write(key_path, _key_pem(key), PRIVATE_MODE)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
    return Issued(cert_path, key_path, PRIVATE_MODE, cert.not_valid_after_utc)


def issue(
    directory: Path,
    name: str,
    hosts: Sequence[str],
    *,
    force: bool = False,
    group: str | None = None,
    key_file: Path | None = None,
) -> Issued:
    """Sign a server certificate `<name>.pem` for `hosts` with the CA in `directory`.

    Its key goes to `key_file` (default `<name>.key` beside it), e.g. a secrets directory.
    """
    if not hosts:
        raise TlsFileError("give at least one --host (a name or an IP address the nodes use)")
    if name == CA_CERT.removesuffix(".pem"):
        raise TlsFileError(f"NAME {name!r} would replace the CA's own files: choose another")
    cert_path, key_path = directory / f"{name}.pem", key_file or directory / f"{name}.key"
    if key_path.name in (CA_CERT, CA_KEY) and key_path.parent == directory:
        raise TlsFileError(f"{key_path} would replace the CA's own file: choose another")
    _refuse_existing([cert_path, key_path], force)
    gid = _group_id(group)
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    not_after = min(now + datetime.timedelta(days=SERVER_DAYS), ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now, not_after)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_mode = PRIVATE_MODE if gid is None else GROUP_MODE
    key_path.parent.mkdir(parents=True, exist_ok=True)
    _write(key_path, _key_pem(key), key_mode, gid)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
    return Issued(cert_path, key_path, key_mode, not_after)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs); a server's ECDSA key signs its handshakes only."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _san(host: str) -> x509.GeneralName:
    """An IP address as an IP SAN (clients match an IP URL only against those), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    name = host.strip().rstrip(".").lower()
    if not name or any(c in name for c in "/: @") or len(name) > 253:
        raise TlsFileError(f"--host {host!r}: expected a DNS name or an IP address")
    return x509.DNSName(name)


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise TlsFileError(
            f"{exc.filename} missing: run `commander-relay tls init --dir {directory}` first"
        ) from exc
    except (OSError, ValueError, TypeError) as exc:
        raise TlsFileError(f"cannot use the CA in {directory}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise TlsFileError(f"{key_path} is not the key of {cert_path}")
    return cert, key


def _group_id(group: str | None) -> int | None:
    if group is None:
        return None
    import grp  # noqa: PLC0415 - POSIX only, and only when a group is asked for

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise TlsFileError(f"--group {group}: no such group") from None


def _refuse_existing(paths: Sequence[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise TlsFileError(f"{', '.join(existing)} exist(s); --force replaces")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int, gid: int | None = None) -> None:
    """Replace `path` atomically; the mode (and group) are set before any byte is written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)  # the umask must not narrow a key the relay's group reads
        os.write(fd, data)
        os.fsync(fd)
    except OSError:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def certificate_days_left(path: Path) -> tuple[str, int]:
    """The hosts a certificate names and the whole days it has left (negative: expired)."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = ", ".join(
            str(v)
            for v in [
                *sans.get_values_for_type(x509.DNSName),
                *sans.get_values_for_type(x509.IPAddress),
            ]
        )
    except x509.ExtensionNotFound:
        hosts = cert.subject.rfc4514_string()
    return hosts, (cert.not_valid_after_utc - _now()).days
