"""Daemons as real processes (shared with the benchmarks)."""

from bench._procs import Daemon

__all__ = ["Daemon"]
