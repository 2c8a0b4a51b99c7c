"""TLS from relay.yaml: the relay's certificate and key, and the CA nodes check the relay with.

Paths in relay.yaml are relative to its directory (like `relay.token_hashes_file`).
Every file is read here, at start-up, so that a missing, unreadable or mismatched file
is a ConfigError naming the key, never a traceback on the first connection.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from runtime.core.config import ClusterConfig
from runtime.core.config_files import config_path as config_relative
from runtime.core.errors import ConfigError, ConfigProblem
from runtime.core.loopback import is_loopback

CERT_KEY = "relay.tls_cert_file"
KEY_KEY = "relay.tls_key_file"
CA_KEY = "relay.ca_file"


def relay_yaml(config: ClusterConfig) -> str:
    """The file a TLS problem is reported against."""
    return str(Path(config.config_dir or ".") / "relay.yaml")


def server_context(config: ClusterConfig) -> ssl.SSLContext | None:
    """The relay's TLS context from relay.yaml (None: plain HTTP); ConfigError if unusable."""
    relay = config.relay
    if relay.tls_cert_file is None and relay.tls_key_file is None:
        return None
    if relay.tls_cert_file is None or relay.tls_key_file is None:
        given, missing = (CERT_KEY, KEY_KEY) if relay.tls_cert_file else (KEY_KEY, CERT_KEY)
        raise ConfigError(
            [ConfigProblem(relay_yaml(config), missing, f"a path, since {given} is set")]
        )
    cert = config_relative(config, relay.tls_cert_file)
    key = config_relative(config, relay.tls_key_file)
    return load_server_context(cert, key, relay_yaml(config))


def load_server_context(cert: Path, key: Path, source: str) -> ssl.SSLContext:
    """A server context for `cert` (PEM chain) and `key` (unencrypted PEM): TLS 1.2 at least."""
    _readable(cert, source, CERT_KEY)
    _readable(key, source, KEY_KEY)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        # A passphrase prompt would hang a service: an encrypted key fails here instead.
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except (ssl.SSLError, ValueError) as exc:
        what = f"{cert} and {key}"
        expected = "a PEM certificate chain and the unencrypted PEM key that matches it"
        raise ConfigError(
            [ConfigProblem(source, f"{CERT_KEY}/{KEY_KEY}", expected, f"{what}: {_reason(exc)}")]
        ) from exc
    return context


def client_ca_file(config: ClusterConfig, override: str | None = None) -> str | None:
    """The CA file a node checks the relay with (None: the system store); ConfigError if unusable.

    `override` (the `--relay-ca-file` flag) is relative to where the command runs.
    """
    if override is not None:
        path, source, key = Path(override).expanduser().absolute(), "--relay-ca-file", "(file)"
    elif config.relay.ca_file is not None:
        path, source, key = (
            config_relative(config, config.relay.ca_file),
            relay_yaml(config),
            CA_KEY,
        )
    else:
        return None
    _readable(path, source, key)
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            [ConfigProblem(source, key, "a PEM CA certificate", f"{path}: {_reason(exc)}")]
        ) from exc
    return str(path)


def tls_problems(config: ClusterConfig) -> list[ConfigProblem]:
    """What check-config says about TLS on this machine.

    relay.yaml is copied to every node, but only the relay host holds the certificate
    and key: they are checked where both exist (or where one exists without the other).
    """
    problems: list[ConfigProblem] = []
    relay = config.relay
    if relay.tls_cert_file and relay.tls_key_file:
        files = [config_relative(config, f) for f in (relay.tls_cert_file, relay.tls_key_file)]
        if any(f.exists() for f in files):
            problems += _problems_of(lambda: server_context(config))
    if relay.ca_file and config_relative(config, relay.ca_file).exists():
        problems += _problems_of(lambda: client_ca_file(config))
    return problems


def _problems_of(check: Callable[[], object]) -> list[ConfigProblem]:
    try:
        check()
    except ConfigError as exc:
        return exc.problems
    return []


def _readable(path: Path, source: str, key: str) -> None:
    try:
        with path.open("rb") as file:
            file.read(1)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(
            [ConfigProblem(source, key, "a readable file", f"{path}: {reason}")]
        ) from exc


def _reason(exc: Exception) -> str:
    """OpenSSL's reason (KEY_VALUES_MISMATCH, ...) rather than its long message."""
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def _no_passphrase() -> bytes:
    raise ValueError("the key is encrypted; the relay needs it unencrypted (mode 0600/0640)")


def relay_urls(
    config: ClusterConfig, override: str | None = None, node_id: str | None = None
) -> tuple[str, ...]:
    """The relays' base URLs for node `node_id`, the preferred first: `override`, else
    from relay.yaml; empty when there is none.

    Several relays of one cluster store are given comma-separated (`--relay-url
    https://a:8765,https://b:8765`). From relay.yaml: the node's own entry's
    `sync_endpoint` (a node that reaches the relay by another address), else the storage
    node's, each without its sync path (`.../sync/messages`); else the storage node's
    host and port, over https when relay.yaml gives the relay a certificate. A plain http
    URL to a relay that has one is refused: the node's token would cross the network in
    clear (and the relay would answer 400 anyway).
    """
    given = override or _own_endpoint(config, node_id) or _from_storage_node(config)
    if given is None:
        return ()
    urls = tuple(u.strip().rstrip("/") for u in given.split(",") if u.strip())
    for url in urls:
        if config.relay.tls_cert_file and not url.startswith("https://"):
            source = "--relay-url" if override else relay_yaml(config)
            expected = f"an https:// URL, since {CERT_KEY} is set"
            raise ConfigError([ConfigProblem(source, "relay URL", expected, url)])
    return urls


def is_loopback_url(url: str) -> bool:
    """Whether a URL's host is this machine's loopback (nothing crosses the network)."""
    host = urlsplit(url).hostname or ""
    return is_loopback(host, bracketed=":" in host)


def _own_endpoint(config: ClusterConfig, node_id: str | None) -> str | None:
    entry = next((n for n in config.nodes if n.id == node_id), None)
    return _base_url(entry.sync_endpoint) if entry and entry.sync_endpoint else None


def _base_url(endpoint: str) -> str:
    """A `sync_endpoint` without its sync path: the relay's base URL."""
    url = endpoint.rstrip("/")
    for suffix in ("/sync/messages", "/sync/message", "/sync"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def _from_storage_node(config: ClusterConfig) -> str | None:
    storage = config.storage_node()
    if storage is None:
        return None
    if storage.sync_endpoint:
        return _base_url(storage.sync_endpoint)
    scheme = "https" if config.relay.tls_cert_file else "http"
    host = f"[{storage.host}]" if ":" in storage.host else storage.host
    return f"{scheme}://{host}:{storage.port}"
