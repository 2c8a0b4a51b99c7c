"""`commander-relay tls init` and `tls issue`: the private CA's commands, and what they print.

Also what `serve` says about TLS at start-up (`warn_about_tls`).

    commander-relay tls init --dir DIR [--force]
    commander-relay tls issue NAME --dir DIR --host HOST [--host HOST ...]
                              [--key-file KEY] [--group GROUP] [--force]
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_app.tls import Issued
from runtime.core.config import ClusterConfig
from runtime.core.config_files import config_path
from runtime.core.ids import ID_RULE, is_id

logger = logging.getLogger("commander-relay")

# A certificate with fewer days left is said at every start.
RENEW_DAYS = 30


def add_tls_commands(sub: Any) -> None:
    """Add `tls init` and `tls issue` to the subparsers `sub` of commander-relay."""
    tls = sub.add_parser("tls", help="a private CA and the relay's certificate (HTTPS)")
    tls_sub = tls.add_subparsers(required=True)
    init = tls_sub.add_parser("init", help="make a CA key (mode 0600) and ca.pem in --dir")
    init.add_argument("--dir", required=True, help="directory for ca.pem and ca.key")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(run=_init)
    cert = tls_sub.add_parser("issue", help="make the relay's certificate, signed by the CA")
    cert.add_argument("name", help="file name: NAME.pem and NAME.key in --dir (e.g. relay)")
    cert.add_argument("--dir", required=True, help="the CA's directory (from `tls init`)")
    cert.add_argument(
        "--host", action="append", required=True, help="a name or IP nodes use (repeatable)"
    )
    cert.add_argument("--key-file", help="where the key goes (default: NAME.key in --dir)")
    cert.add_argument("--group", help="group that may read the key (mode 0640), e.g. commander")
    cert.add_argument("--force", action="store_true", help="replace existing files")
    cert.set_defaults(run=_issue)


def _init(args: argparse.Namespace) -> int:
    directory = Path(args.dir).absolute()
    try:
        made = _tls().init_ca(directory, force=args.force)
    except (_tls().TlsFileError, OSError) as exc:
        return _fail(exc)
    print(f"CA certificate: {made.cert}  (public: copy it to every node)")
    print(f"CA key:         {made.key}  (mode 0600: keep it on this machine only)")
    print(f"valid until {made.not_after:%Y-%m-%d}. In relay.yaml (on every machine):")
    print(f"  relay:\n    ca_file: {made.cert}")
    print(f"Next: commander-relay tls issue relay --dir {directory} --host <relay's IP or name>")
    return 0


def _issue(args: argparse.Namespace) -> int:
    if not is_id(args.name):
        print(f"commander-relay: NAME: {ID_RULE}", file=sys.stderr)
        return 2
    directory = Path(args.dir).absolute()
    try:
        key_file = Path(args.key_file).absolute() if args.key_file else None
        made = _tls().issue(
            directory, args.name, args.host, force=args.force, group=args.group, key_file=key_file
        )
    except (_tls().TlsFileError, OSError) as exc:
        return _fail(exc)
    _print_issued(made, args.host, args.group, directory)
    return 0


def _print_issued(made: Issued, hosts: list[str], group: str | None, directory: Path) -> None:
    readers = f"mode 0640, group {group}" if group else "mode 0600"
    print(
        f"certificate: {made.cert}  (for {', '.join(hosts)}; valid until {made.not_after:%Y-%m-%d})"
    )
    print(f"key:         {made.key}  ({readers}: the relay's user must read it)")
    print("In relay.yaml (the same file on every machine):")
    print(f"  relay:\n    tls_cert_file: {made.cert}\n    tls_key_file: {made.key}")
    print(f"    ca_file: {directory / 'ca.pem'}")
    host = f"[{hosts[0]}]" if ":" in hosts[0] else hosts[0]
    print(f'  and the storage node\'s sync_endpoint: "https://{host}:8001/sync/messages"')
    print("Copy ca.pem (never ca.key, never the relay's key) to each node at that ca_file path.")


def _fail(exc: Exception) -> int:
    if isinstance(exc, PermissionError):
        print(f"commander-relay: {exc} (run as root to give the key a group)", file=sys.stderr)
    else:
        print(f"commander-relay: {exc}", file=sys.stderr)
    return 1


def warn_about_tls(config: ClusterConfig, host: str) -> None:
    """At start-up: plain HTTP beyond loopback is said; a certificate near its end is too."""
    cert = config.relay.tls_cert_file
    if cert is None:
        if not _loopback(host):
            logger.warning(
                "serving plain HTTP on %s: node tokens, the operator's password and session"
                " cross the network in clear; `commander-relay tls init` makes a CA for HTTPS",
                host,
            )
        return
    try:
        hosts, days = _tls().certificate_days_left(config_path(config, cert))
    except (OSError, ValueError):  # already loaded by the server: only the summary failed
        return
    if days < RENEW_DAYS:
        logger.warning(
            "the relay's certificate (%s) %s: `commander-relay tls issue --force` makes a new one",
            hosts,
            f"expired {-days} days ago" if days < 0 else f"expires in {days} days",
        )
    else:
        logger.info("HTTPS with a certificate for %s, valid %d more days", hosts, days)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _tls() -> ModuleType:
    """relay_app.tls, imported on first use."""
    # It loads the cryptography package, megabytes of resident memory that a relay serving
    # plain HTTP would carry for nothing.
    import relay_app.tls  # noqa: PLC0415

    return relay_app.tls
