"""Config files parsed once into frozen dataclasses, every problem reported at once.

Files (the design's schema, plus optional keys with defaults):
- `<config_dir>/relay.yaml`: the cluster topology (`nodes:`) and optional `relay:`
  settings for the storage host;
- `<config_dir>/agents/<agent_id>.yaml`: one agent each.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from runtime.core.config_keys import dangling_agents, unknown_keys
from runtime.core.envelope import MAX_BATCH_BYTES
from runtime.core.errors import ConfigError, ConfigProblem
from runtime.core.ids import ID_SHAPE, is_id
from runtime.core.sizing import ROLE_PROFILES, cache_bytes

# `\Z`, not `$`: `$` also matches before a trailing newline.
SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")
# What useradd accepts (at most 32 characters, no leading '-'), minus all-digit names,
# which tools would take for uids.
UNIX_USER_RE = re.compile(r"\A(?![0-9]+\Z)[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}[A-Za-z0-9_.$-]?\Z")
ID_EXPECTED = f"an id: {ID_SHAPE}"
UNIX_USER_EXPECTED = "a Unix user name: letters, digits, '_.-', at most 32, not all digits"


@dataclass(frozen=True)
class CacheConfig:
    """`cache:` section of an agent file."""

    max_bytes: int | None = None
    retention_days: float = 30.0
    compression: bool = True


@dataclass(frozen=True)
class SyncConfig:
    """`sync:` section of an agent file."""

    batch_size: int = 500
    interval_seconds: float = 5.0
    retry_max: int = 10
    retry_backoff_base: float = 2.0
    # Not in the design: the largest delay between retries, and the HTTP timeout.
    retry_cap_seconds: float = 300.0
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class AgentConfig:
    """One agent: who it is, where it runs, how big its cache is, how it syncs."""

    agent_id: str
    role: str
    node_id: str
    enabled: bool = True
    context_tokens: int | None = None
    cache: CacheConfig = field(default_factory=CacheConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    # The Unix user the agent runs as: its socket then serves that uid (and root, and the
    # node's own user) only. None: the socket's mode alone decides, as before.
    unix_user: str | None = None
    source: str = ""

    @property
    def cache_max_bytes(self) -> int:
        """The cache limit: `cache.max_bytes` if set, else the role formula."""
        if self.cache.max_bytes is not None:
            return self.cache.max_bytes
        return cache_bytes(self.role, self.context_tokens)


@dataclass(frozen=True)
class NodeEntry:
    """One entry of `nodes:` in relay.yaml."""

    id: str
    host: str
    port: int
    role: str = "agent"
    sync_enabled: bool = True
    sync_endpoint: str | None = None
    # sha256 hex of the node's secret token; the token itself never sits in this file.
    token_sha256: str | None = None


@dataclass(frozen=True)
class RelaySettings:
    """Optional `relay:` section: how the storage host runs the relay."""

    data_dir: str = "/gillsystems_zfs_pool/AI_storage"
    host: str | None = None
    port: int | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    max_batch_messages: int = 5000
    max_file_bytes: int = 256 * 1024 * 1024
    min_free_bytes: int = 256 * 1024 * 1024
    synchronous: str = "FULL"
    # A YAML file mapping node id -> sha256 hex of its token (an alternative to token_sha256).
    token_hashes_file: str | None = None
    # Operator login for the /messages page: a scrypt hash made by `commander-relay hash-password`.
    operator_user: str = "operator"
    operator_password_hash: str | None = None
    execute_webhook: str | None = None
    threads: int = 16
    # A file holding the operator's scrypt hash, readable by the relay only (mode 0640
    # root:commander): relay.yaml is copied to every node, so no secret belongs in it.
    operator_password_file: str | None = None
    # HTTPS: the relay's certificate chain and key (PEM), e.g. from `commander-relay tls`.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # The CA certificate (PEM) nodes verify the relay against; unset: the system store.
    ca_file: str | None = None
    # Addresses of reverse proxies whose X-Forwarded-For/-Proto the relay believes.
    trusted_proxies: tuple[str, ...] = ()
    # sha256 hex of the bearer token Prometheus sends for /metrics; unset: /metrics is open.
    metrics_token_sha256: str | None = None
    # Any authenticated node may write for any agent id. Not a relay.yaml key on purpose:
    # only `commander-relay serve --allow-any-agent` (tests, benchmarks) sets it.
    allow_any_agent: bool = False


@dataclass(frozen=True)
class ClusterConfig:
    """Everything read from one config directory."""

    nodes: tuple[NodeEntry, ...]
    relay: RelaySettings
    agents: tuple[AgentConfig, ...]
    config_dir: str = ""

    def storage_node(self) -> NodeEntry | None:
        """Return the node entry with role `storage`, if any."""
        return next((n for n in self.nodes if n.role == "storage"), None)

    def agents_on(self, node_id: str) -> tuple[AgentConfig, ...]:
        """Return the enabled agents configured to run on `node_id`."""
        return tuple(a for a in self.agents if a.node_id == node_id and a.enabled)


class _Reader:
    """Reads typed values out of one mapping, collecting problems instead of raising."""

    def __init__(self, file: str, problems: list[ConfigProblem]) -> None:
        self.file = file
        self.problems = problems

    def problem(self, key: str, expected: str, got: Any = None) -> None:
        got_text = "" if got is None else repr(got)[:80]
        self.problems.append(ConfigProblem(self.file, key, expected, got_text))

    def section(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, "a mapping", value)
            return {}
        return value

    def get(
        self,
        data: dict[str, Any],
        key: str,
        check: Callable[[Any], bool],
        expected: str,
        default: Any,
        prefix: str = "",
    ) -> Any:
        if key not in data or data[key] is None:
            return default
        value = data[key]
        if not check(value):
            self.problem(prefix + key, expected, value)
            return default
        return value


def _field_names(cls: type) -> frozenset[str]:
    """The keys a file may hold for this dataclass: its fields."""
    return frozenset(f.name for f in fields(cls))


# `source` is where the agent was read from, not a key of its file.
_AGENT_KEYS = frozenset(f.name for f in fields(AgentConfig)) - {"source"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _is_pos_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v > 0


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _is_unix_user(v: Any) -> bool:
    return isinstance(v, str) and bool(UNIX_USER_RE.match(v))


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _load_yaml(path: Path, problems: list[ConfigProblem]) -> dict[str, Any] | None:
    """Parse one YAML file into a mapping, or record why not."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(ConfigProblem(str(path), "(file)", "a readable file", exc.strerror or ""))
        return None
    except UnicodeDecodeError:
        problems.append(ConfigProblem(str(path), "(file)", "UTF-8 text"))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        detail = getattr(exc, "problem", None) or str(exc).split("\n")[0]
        problems.append(ConfigProblem(str(path), where, "valid YAML", str(detail)))
        return None
    if not isinstance(data, dict):
        problems.append(ConfigProblem(str(path), "(top level)", "a mapping", repr(data)[:80]))
        return None
    return data


def parse_agent(data: dict[str, Any], file: str, problems: list[ConfigProblem]) -> AgentConfig:
    """Parse one agent mapping; problems are appended, defaults fill the gaps."""
    r = _Reader(file, problems)
    for key in ("agent_id", "role", "node_id"):
        if key not in data:
            r.problem(key, "a value (required)")
    unknown_keys(data, _AGENT_KEYS, file, problems)
    agent_id = r.get(data, "agent_id", is_id, ID_EXPECTED, "invalid")
    role = r.get(data, "role", lambda v: v in ROLE_PROFILES, f"one of {sorted(ROLE_PROFILES)}", "")
    node_id = r.get(data, "node_id", is_id, ID_EXPECTED, "invalid")
    c, s = r.section(data, "cache"), r.section(data, "sync")
    unknown_keys(c, _field_names(CacheConfig), file, problems, "cache.")
    unknown_keys(s, _field_names(SyncConfig), file, problems, "sync.")
    cache = CacheConfig(
        max_bytes=r.get(c, "max_bytes", _is_pos_int, "a positive integer", None, "cache."),
        retention_days=r.get(c, "retention_days", _is_pos_num, "a positive number", 30.0, "cache."),
        compression=r.get(c, "compression", _is_bool, "true or false", True, "cache."),
    )
    sync = SyncConfig(
        batch_size=r.get(s, "batch_size", _is_pos_int, "a positive integer", 500, "sync."),
        interval_seconds=r.get(
            s, "interval_seconds", _is_pos_num, "a positive number", 5.0, "sync."
        ),
        retry_max=r.get(s, "retry_max", _is_pos_int, "a positive integer", 10, "sync."),
        retry_backoff_base=r.get(
            s,
            "retry_backoff_base",
            lambda v: _is_pos_num(v) and v >= 1,
            "a number >= 1",
            2.0,
            "sync.",
        ),
        retry_cap_seconds=r.get(
            s, "retry_cap_seconds", _is_pos_num, "a positive number", 300.0, "sync."
        ),
        timeout_seconds=r.get(s, "timeout_seconds", _is_pos_num, "a positive number", 5.0, "sync."),
    )
    return AgentConfig(
        agent_id=agent_id,
        role=role or "commander",
        node_id=node_id,
        enabled=r.get(data, "enabled", _is_bool, "true or false", True),
        context_tokens=r.get(data, "context_tokens", _is_pos_int, "a positive integer", None),
        cache=cache,
        sync=sync,
        unix_user=r.get(data, "unix_user", _is_unix_user, UNIX_USER_EXPECTED, None),
        source=file,
    )


def parse_node(item: Any, index: int, file: str, problems: list[ConfigProblem]) -> NodeEntry | None:
    """Parse one entry of `nodes:`."""
    r, p = _Reader(file, problems), f"nodes[{index}]."
    if not isinstance(item, dict):
        r.problem(f"nodes[{index}]", "a mapping", item)
        return None
    for key in ("id", "host", "port"):
        if key not in item:
            r.problem(p + key, "a value (required)")
    unknown_keys(item, _field_names(NodeEntry), file, problems, p)
    return NodeEntry(
        id=r.get(item, "id", is_id, ID_EXPECTED, "invalid", p),
        host=r.get(item, "host", _is_str, "a host name or address", "127.0.0.1", p),
        port=r.get(item, "port", lambda v: _is_int(v) and 0 < v < 65536, "a port 1-65535", 8001, p),
        role=r.get(item, "role", _is_str, "a role name", "agent", p),
        sync_enabled=r.get(item, "sync_enabled", _is_bool, "true or false", True, p),
        sync_endpoint=r.get(item, "sync_endpoint", _is_url, "an http(s) URL", None, p),
        token_sha256=r.get(item, "token_sha256", _is_sha, "64 lowercase hex digits", None, p),
    )


def _is_url(v: Any) -> bool:
    return isinstance(v, str) and v.startswith(("http://", "https://"))


def _is_sha(v: Any) -> bool:
    return isinstance(v, str) and bool(SHA256_RE.match(v))


def _is_address_list(v: Any) -> bool:
    if not isinstance(v, list):
        return False
    try:
        for item in v:
            ipaddress.ip_address(item)
    except (TypeError, ValueError):
        return False
    return True


_RELAY_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "data_dir": (_is_str, "a directory path"),
    "host": (_is_str, "a host name or address"),
    "port": (lambda v: _is_int(v) and 0 < v < 65536, "a port 1-65535"),
    # Smaller, and a node's full batch (or its largest single message) is refused for good.
    "max_body_bytes": (
        lambda v: _is_int(v) and v >= MAX_BATCH_BYTES,
        f"an integer of at least {MAX_BATCH_BYTES} (the largest batch a node sends)",
    ),
    "max_batch_messages": (_is_pos_int, "a positive integer"),
    "max_file_bytes": (_is_pos_int, "a positive integer"),
    "min_free_bytes": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "synchronous": (lambda v: v in ("FULL", "NORMAL", "EXTRA"), "FULL, NORMAL or EXTRA"),
    "token_hashes_file": (_is_str, "a file path"),
    "operator_user": (_is_str, "a user name"),
    "operator_password_hash": (_is_str, "a hash from `commander-relay hash-password`"),
    "execute_webhook": (_is_url, "an http(s) URL"),
    "threads": (_is_pos_int, "a positive integer"),
    "operator_password_file": (_is_str, "a file path"),
    "tls_cert_file": (_is_str, "a file path"),
    "tls_key_file": (_is_str, "a file path"),
    "ca_file": (_is_str, "a file path"),
    "trusted_proxies": (_is_address_list, "a list of IP addresses"),
    "metrics_token_sha256": (_is_sha, "64 lowercase hex digits"),
}


def parse_relay_settings(
    data: dict[str, Any], file: str, problems: list[ConfigProblem]
) -> RelaySettings:
    """Parse the optional `relay:` section."""
    r = _Reader(file, problems)
    section = r.section(data, "relay")
    for key in section:
        if key not in _RELAY_KEYS:
            r.problem(f"relay.{key}", f"one of {sorted(_RELAY_KEYS)}", key)
    defaults = RelaySettings()
    values = {
        key: r.get(section, key, check, expected, getattr(defaults, key), "relay.")
        for key, (check, expected) in _RELAY_KEYS.items()
    }
    if isinstance(values["trusted_proxies"], list):
        values["trusted_proxies"] = tuple(values["trusted_proxies"])
    # A certificate without its key (or the reverse) cannot serve HTTPS: say so, not plain HTTP.
    for given, other in (("tls_cert_file", "tls_key_file"), ("tls_key_file", "tls_cert_file")):
        if values[given] and not values[other]:
            r.problem(f"relay.{other}", f"a file path, since relay.{given} is set")
    return RelaySettings(**values)


def load_topology(
    path: Path, problems: list[ConfigProblem]
) -> tuple[tuple[NodeEntry, ...], RelaySettings]:
    """Load relay.yaml: the nodes and the relay settings."""
    data = _load_yaml(path, problems)
    if data is None:
        return (), RelaySettings()
    unknown_keys(data, ("nodes", "relay"), str(path), problems)
    nodes_raw = data.get("nodes")
    if not isinstance(nodes_raw, list) or not nodes_raw:
        problems.append(
            ConfigProblem(str(path), "nodes", "a non-empty list of nodes", repr(nodes_raw)[:80])
        )
        nodes_raw = []
    nodes = [parse_node(item, i, str(path), problems) for i, item in enumerate(nodes_raw)]
    entries = tuple(n for n in nodes if n is not None)
    _check_unique([n.id for n in entries], str(path), "nodes[].id", problems)
    relay = parse_relay_settings(data, str(path), problems)
    storage = next((n for n in entries if n.role == "storage"), None)
    endpoint = storage.sync_endpoint if storage else None
    if relay.tls_cert_file and endpoint and not endpoint.startswith("https://"):
        expected = "an https:// URL, since relay.tls_cert_file is set"
        problems.append(
            ConfigProblem(str(path), "nodes[storage].sync_endpoint", expected, endpoint)
        )
    return entries, relay


def load_agents(agents_dir: Path, problems: list[ConfigProblem]) -> tuple[AgentConfig, ...]:
    """Load every `*.yaml` in the agents directory; the file name must match agent_id."""
    agents = []
    for path in sorted(agents_dir.glob("*.yaml")):
        data = _load_yaml(path, problems)
        if data is None:
            continue
        agent = parse_agent(data, str(path), problems)
        if agent.agent_id not in (path.stem, "invalid"):
            problems.append(
                ConfigProblem(
                    str(path), "agent_id", f"{path.stem!r} (the file name)", agent.agent_id
                )
            )
        agents.append(agent)
    _check_unique([a.agent_id for a in agents], str(agents_dir), "agent_id", problems)
    return tuple(agents)


def _check_unique(ids: list[str], file: str, key: str, problems: list[ConfigProblem]) -> None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            problems.append(ConfigProblem(file, key, "unique values", item))
        seen.add(item)


def collect_problems(config_dir: str | Path) -> tuple[ClusterConfig, list[ConfigProblem]]:
    """Load a config directory and return it with every problem found (maybe none)."""
    root = Path(config_dir)
    problems: list[ConfigProblem] = []
    nodes, relay = load_topology(root / "relay.yaml", problems)
    agents_dir = root / "agents"
    agents: tuple[AgentConfig, ...] = ()
    if agents_dir.is_dir():
        agents = load_agents(agents_dir, problems)
    dangling_agents({n.id for n in nodes}, [(a.source, a.node_id) for a in agents], problems)
    config = ClusterConfig(nodes=nodes, relay=relay, agents=agents, config_dir=str(root))
    return config, problems


def load_config(config_dir: str | Path) -> ClusterConfig:
    """Load a config directory, raising ConfigError listing every problem."""
    config, problems = collect_problems(config_dir)
    if problems:
        raise ConfigError(problems)
    return config
