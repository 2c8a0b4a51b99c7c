"""Cache sizing: `cache_bytes = BASE_SIZE + (CONTEXT_TOKENS / 1000) * SCALE_FACTOR`."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class RoleProfile:
    """The cache sizing defaults of one agent role."""

    base_bytes: int
    context_tokens: int
    scale_bytes_per_1k: float


# Per role: base size, context window, bytes per 1,000 tokens. Sizes are in MiB and GiB
# (a recruiter: 2 GiB + 32 x 2 MiB = 2.06 GiB).
ROLE_PROFILES: dict[str, RoleProfile] = {
    "commander": RoleProfile(100 * MIB, 32_000, 0.5 * MIB),
    "recruiter": RoleProfile(2048 * MIB, 32_000, 2 * MIB),
    "reasoner": RoleProfile(500 * MIB, 128_000, 1 * MIB),
    "coder": RoleProfile(1024 * MIB, 64_000, 1.5 * MIB),
    "synthesizer": RoleProfile(300 * MIB, 32_000, 0.75 * MIB),
}


def cache_bytes(role: str, context_tokens: int | None = None) -> int:
    """Return the cache size for a role, using its default context window if none is given."""
    profile = ROLE_PROFILES[role]
    tokens = profile.context_tokens if context_tokens is None else context_tokens
    return int(profile.base_bytes + (tokens / 1000) * profile.scale_bytes_per_1k)
