"""Config files parsed once into frozen dataclasses, every problem reported at once.

Files (every key and its default: README.md, "Configuration"):
- `<config_dir>/relay.yaml`: the cluster topology (`nodes:`) and optional `relay:`
  settings for the storage host;
- `<config_dir>/agents/<agent_id>.yaml`: one agent each.

A key's default is its dataclass field's default and is written nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from runtime.core.config_checks import (
    AGENT_OPTIONAL_KEYS,
    CACHE_KEYS,
    ID_EXPECTED,
    NODE_OPTIONAL_KEYS,
    RELAY_KEYS,
    SYNC_KEYS,
    Keys,
    is_port,
    is_str,
)
from runtime.core.config_keys import dangling_agents, unknown_keys
from runtime.core.errors import ConfigError, ConfigProblem
from runtime.core.ids import is_id
from runtime.core.sizing import ROLE_PROFILES, cache_bytes


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
    # The largest delay between retries, in seconds; retries never stop.
    retry_cap_seconds: float = 300.0
    # Seconds each socket operation of a request to the relay may wait (a request: twice).
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
    # Where the corpus lives: "sqlite" (<data_dir>/messages/cluster_messages.db) or a
    # postgresql:// URL shared by several relays. Keep its password out of this file,
    # which every node gets a copy of: libpq reads it from ~/.pgpass or PGPASSFILE.
    store: str = "sqlite"
    # A YAML file mapping node id -> sha256 hex of its token (an alternative to token_sha256).
    token_hashes_file: str | None = None
    # Operator login for the /messages page: a scrypt hash made by `commander-relay hash-password`.
    operator_user: str = "operator"
    operator_password_hash: str | None = None
    execute_webhook: str | None = None
    threads: int = 16
    # Seconds a client may take to read one whole answer before the relay lets go of it
    # (and of what it had queued for it): a reader that stalls holds no memory for long.
    write_timeout_s: float = 30.0
    # Days after which a message leaves the hot database for the compressed archive
    # (`commander-relay archive`); 0 keeps messages hot until an operator archives them.
    # A quarter keeps the hot file to the traffic people still act on, and an archived
    # message stays findable by msg_id, listable and searchable.
    archive_after_days: float = 90.0
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

    def values(self, data: dict[str, Any], keys: Keys, cls: type, prefix: str = "") -> Any:
        """Each key's value if it passes its check, else the dataclass field's default."""
        defaults = field_defaults(cls)
        return {
            key: self.get(data, key, check, expected, defaults[key], prefix)
            for key, (check, expected) in keys.items()
        }


def field_defaults(cls: type) -> dict[str, Any]:
    """The default of each field of a dataclass that has one: the one source of defaults."""
    found: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            found[f.name] = f.default
        elif f.default_factory is not MISSING:
            found[f.name] = f.default_factory()
    return found


def _field_names(cls: type) -> frozenset[str]:
    """The keys a file may hold for this dataclass: its fields."""
    return frozenset(f.name for f in fields(cls))


# `source` is where the agent was read from, not a key of its file.
_AGENT_KEYS = frozenset(f.name for f in fields(AgentConfig)) - {"source"}


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
    return AgentConfig(
        agent_id=agent_id,
        role=role or "commander",
        node_id=node_id,
        cache=CacheConfig(**r.values(c, CACHE_KEYS, CacheConfig, "cache.")),
        sync=SyncConfig(**r.values(s, SYNC_KEYS, SyncConfig, "sync.")),
        source=file,
        **r.values(data, AGENT_OPTIONAL_KEYS, AgentConfig),
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
        host=r.get(item, "host", is_str, "a host name or address", "127.0.0.1", p),
        port=r.get(item, "port", is_port, "a port 1-65535", 8001, p),
        **r.values(item, NODE_OPTIONAL_KEYS, NodeEntry, p),
    )


def parse_relay_settings(
    data: dict[str, Any], file: str, problems: list[ConfigProblem]
) -> RelaySettings:
    """Parse the optional `relay:` section."""
    r = _Reader(file, problems)
    section = r.section(data, "relay")
    for key in section:
        if key not in RELAY_KEYS:
            r.problem(f"relay.{key}", f"one of {sorted(RELAY_KEYS)}", key)
    values = r.values(section, RELAY_KEYS, RelaySettings, "relay.")
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
    if relay.tls_cert_file:  # any node's endpoint may be where some node sends
        expected = "an https:// URL, since relay.tls_cert_file is set"
        problems += [
            ConfigProblem(str(path), f"nodes[{i}].sync_endpoint", expected, n.sync_endpoint)
            for i, n in enumerate(nodes)
            if n and n.sync_endpoint and not n.sync_endpoint.startswith("https://")
        ]
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
