"""Implementations of the `relay_app.store` protocols; the only modules that hold SQL."""

from runtime.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {"sqlite": ("SqliteStore",)})
