"""Package APIs named in `__init__.py` and imported on first use, so naming costs nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, table: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for a package whose API lives in its modules.

    `table` maps a module (relative to `package`) to the public names it defines; a
    module of the package imports its siblings directly, never through the package.
    """
    where = {name: module for module, names in table.items() for name in names}
    public = sorted(where)

    def getattr_(name: str) -> Any:
        """Import the module that defines `name` and return it."""
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def dir_() -> list[str]:
        """The public names, for `dir()` and completion."""
        return list(public)

    return public, getattr_, dir_
