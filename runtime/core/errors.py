"""Errors raised on purpose, under one root.

Hierarchy (the relay's request errors, `relay_app.errors.RelayAppError`, are one more
branch under the root)::

    CommanderError
    ├── ConfigError              a config file is wrong (carries every problem found)
    ├── InvalidMessage           a message envelope failed validation
    ├── CacheError               the local cache could not do what was asked
    │   └── CacheFull            the cache limit or the disk is full; nothing was written
    ├── ActorUnavailable         an actor is restarting or stopped and did not come back in time
    ├── SupervisorGaveUp         restart intensity exceeded; the node must exit
    └── RelayError               talking to the relay failed
        ├── RelayUnavailable     network error, timeout or a retryable status
        │   └── RelayUntrusted   the relay's TLS certificate failed verification
        └── RelayRejected        the relay refused the request as invalid (4xx)
"""

from __future__ import annotations

from dataclasses import dataclass


class CommanderError(Exception):
    """Root of every error this project raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in one config file."""

    file: str
    key: str
    expected: str
    got: str = ""

    def __str__(self) -> str:
        got = f", got {self.got}" if self.got else ""
        return f"{self.file}: {self.key}: expected {self.expected}{got}"


class ConfigError(CommanderError):
    """One or more config files are invalid; `problems` lists them all."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InvalidMessage(CommanderError):
    """A message envelope failed validation; the text names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class CacheError(CommanderError):
    """The local cache failed to perform an operation."""


class CacheFull(CacheError):
    """A write was refused because the cache limit or the disk is full."""

    def __init__(self, agent_id: str, limit_bytes: int, detail: str) -> None:
        self.agent_id = agent_id
        self.limit_bytes = limit_bytes
        self.detail = detail
        super().__init__(
            f"cache of agent {agent_id!r} is full ({detail}; limit {limit_bytes} bytes); "
            "nothing was written — free space or raise cache.max_bytes"
        )


class ActorUnavailable(CommanderError):
    """An actor stayed down (restarting or stopped) past the caller's timeout."""


class SupervisorGaveUp(CommanderError):
    """A child restarted too often; the supervisor stopped everything."""


class RelayError(CommanderError):
    """A request to the relay failed."""


class RelayUnavailable(RelayError):
    """The relay could not be reached or answered with a retryable status."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(reason)


class RelayUntrusted(RelayUnavailable):
    """The relay's certificate did not verify: nothing was sent; an operator fixes the CA."""


class RelayRejected(RelayError):
    """The relay refused the request as invalid; retrying it unchanged will not help."""

    def __init__(self, reason: str, status: int) -> None:
        self.status = status
        super().__init__(reason)
