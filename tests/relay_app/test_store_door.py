"""The store is the only door to the relay's data: no relay module outside relay_app/stores/
holds SQL or touches SQLite, and only the modules that build a store import one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.test_layers import REPO, imported, modules

# What the door's rule looks for in a module's text (the same as a grep of the tree).
DATABASE_TEXT = re.compile(r"sqlite3|SELECT |INSERT |UPDATE |DELETE FROM|execute\(")
# The modules that construct a store, and so name an implementation.
BUILDERS = {"relay_app.server", "relay_app.cli", "relay_app.archive.cli"}


def relay_modules() -> list[tuple[str, Path, str]]:
    """(dotted name, path, source) of every relay module outside its store implementations."""
    return [
        (module, path, path.read_text())
        for module, path in modules()
        if module.startswith("relay_app") and not module.startswith("relay_app.stores")
    ]


def test_no_relay_module_outside_the_stores_holds_sql_or_touches_sqlite() -> None:
    found = [
        f"{module}:{source.count(chr(10), 0, match.start()) + 1}: {match.group(0)}"
        for module, _, source in relay_modules()
        for match in DATABASE_TEXT.finditer(source)
    ]
    assert found == []


def test_only_the_modules_that_build_a_store_import_an_implementation() -> None:
    found = []
    for module, path, source in relay_modules():
        if module in BUILDERS:
            continue
        for line, name in imported(module, path, ast.parse(source)):
            if name == "relay_app.stores" or name.startswith("relay_app.stores."):
                found.append(f"{module}:{line} imports {name}")
    assert found == []


def test_the_checks_see_what_they_look_for() -> None:
    """The patterns match a query and an implementation's import (the checks can fail)."""
    assert DATABASE_TEXT.search('conn.execute("SELECT 1")')
    tree = ast.parse("from relay_app.stores.sqlite import SqliteStore\n")
    names = [name for _, name in imported("relay_app.x", REPO / "relay_app" / "x.py", tree)]
    assert "relay_app.stores.sqlite" in names
