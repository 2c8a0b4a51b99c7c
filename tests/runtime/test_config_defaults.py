"""Config defaults have one source, the dataclasses; the README's tables and the parser agree.

The README's Configuration section has one table per file (agent file, `nodes[]` entry,
`relay:` section): every key with its default as YAML in backticks, `unset` (None) or
`required`. Each table must name exactly the keys its dataclass reads, with its defaults.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.core.backoff import Backoff, sync_backoff
from runtime.core.config import (
    AgentConfig,
    CacheConfig,
    NodeEntry,
    RelaySettings,
    SyncConfig,
    field_defaults,
    parse_agent,
    parse_node,
    parse_relay_settings,
)
from runtime.core.errors import ConfigProblem

README = Path(__file__).resolve().parents[2] / "README.md"
REQUIRED = object()
# Fields that are no key of any file: where an agent was read from, and a flag of `serve`.
NOT_KEYS = {"source", "allow_any_agent", "cache", "sync"}


def readme_table(first_header: str) -> dict[str, Any]:
    """key -> documented default of the README table whose first header cell is given."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    table: dict[str, Any] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        key, default = (cell.strip() for cell in line.split("|")[1:3])
        table[key.strip("`")] = documented(default)
    return table


def documented(cell: str) -> Any:
    """The default a cell states: REQUIRED, None for unset, else its first `yaml`."""
    if cell == "required":
        return REQUIRED
    if cell.startswith("unset"):
        return None
    found = re.match(r"`([^`]*)`", cell)
    assert found, f"a default in backticks, 'unset' or 'required': {cell!r}"
    return yaml.safe_load(found.group(1))


def code_defaults(cls: type, prefix: str = "") -> dict[str, Any]:
    """key -> default of each field that is a key of a file (REQUIRED without one)."""
    defaults = field_defaults(cls)
    return {
        prefix + f.name: _plain(defaults.get(f.name, REQUIRED))
        for f in fields(cls)
        if f.name not in NOT_KEYS
    }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "Agent file key",
            lambda: {
                **code_defaults(AgentConfig),
                **code_defaults(CacheConfig, "cache."),
                **code_defaults(SyncConfig, "sync."),
            },
        ),
        ("Node key (`nodes[]`)", lambda: code_defaults(NodeEntry)),
        ("Relay key (`relay:`)", lambda: code_defaults(RelaySettings)),
    ],
    ids=["agent", "node", "relay"],
)
def test_the_readme_documents_every_key_with_the_codes_default(header: str, expected: Any) -> None:
    assert readme_table(header) == expected()


def test_the_retry_cap_the_readme_states_is_the_one_in_force() -> None:
    assert readme_table("Agent file key")["sync.retry_cap_seconds"] == 300
    assert SyncConfig().retry_cap_seconds == 300
    # A Backoff made without arguments is the agent's default one, not another 60 s cap.
    assert Backoff() == sync_backoff(SyncConfig())
    assert Backoff().ceiling(100) == 300


def test_a_file_without_optional_keys_gets_the_dataclass_defaults() -> None:
    problems: list[ConfigProblem] = []
    agent = parse_agent({"agent_id": "a", "role": "coder", "node_id": "n"}, "a.yaml", problems)
    node = parse_node({"id": "n", "host": "h", "port": 1}, 0, "relay.yaml", problems)
    relay = parse_relay_settings({}, "relay.yaml", problems)

    assert problems == []
    assert agent == AgentConfig("a", "coder", "n", source="a.yaml")
    assert node == NodeEntry("n", "h", 1)
    assert relay == RelaySettings()


def test_every_optional_key_is_read_from_its_file() -> None:
    """Each key set to something else than its default comes out changed: none is ignored."""
    problems: list[ConfigProblem] = []
    agent = parse_agent(
        {
            "agent_id": "a", "role": "coder", "node_id": "n", "enabled": False,
            "context_tokens": 1000, "unix_user": "agent1",
            "cache": {"max_bytes": 1, "retention_days": 1, "compression": False},
            "sync": {"batch_size": 1, "interval_seconds": 1, "retry_max": 1,
                     "retry_backoff_base": 3, "retry_cap_seconds": 1, "timeout_seconds": 1},
        },
        "a.yaml",
        problems,
    )  # fmt: skip
    node = parse_node(
        {"id": "n", "host": "h", "port": 1, "role": "storage", "sync_enabled": False,
         "sync_endpoint": "http://h:1", "token_sha256": "0" * 64},
        0, "relay.yaml", problems,
    )  # fmt: skip
    assert problems == []
    assert node is not None
    for read, default in (
        (agent, AgentConfig("a", "coder", "n")),
        (agent.cache, CacheConfig()),
        (agent.sync, SyncConfig()),
        (node, NodeEntry("n", "h", 1)),
    ):
        unchanged = [
            f.name
            for f in fields(read)
            if f.name not in {"agent_id", "role", "node_id", "source", "id", "host", "port"}
            and f.default is not MISSING
            and getattr(read, f.name) == getattr(default, f.name)
        ]
        assert unchanged == [], type(read).__name__
