"""The packages import one way, and only the stores hold SQL: read from every module's `ast`.

Layers, lowest first: the kernel (`runtime.core`), the node's actors (`actors`), the node
application (`runtime.node`) and, beside the node side, the relay (`relay_app`). A layer
imports only those it stands on; the quickstart drives both sides and may import anything.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "runtime", "relay_app")
# Layer -> the layers it may import (itself included).
ALLOWED = {
    "kernel": {"kernel"},
    "actors": {"kernel", "actors"},
    "node": {"kernel", "actors", "node"},
    "relay": {"kernel", "relay"},
    "quickstart": {"kernel", "actors", "node", "relay", "quickstart"},
}
# The only modules that may open a database or hold SQL: the relay's store implementations,
# the node's own local stores (one agent's cache, its digests for refill, and outbox; the
# node's received mail) and the kernel's SQLite helpers they share.
STORE_MODULES = re.compile(
    r"\A(relay_app\.stores(\..+)?|actors\.(cache|outbox)_store|actors\.cache_digests"
    r"|runtime\.node\.mail_store|runtime\.core\.sqlite)\Z"
)
SQL = re.compile(r"\A\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|WITH)\s")


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or None outside the three packages."""
    parts = module.split(".")
    top = parts[0]
    if top == "actors":
        return "actors"
    if top == "relay_app":
        return "relay"
    if top != "runtime":
        return None
    if len(parts) == 1 or parts[1] == "core":
        return "kernel"
    return {"node": "node", "quickstart": "quickstart"}.get(parts[1], "unplaced")


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the three packages, by dotted name."""
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imported(module: str, path: Path, tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in the module, relative ones resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name
            for alias in node.names:  # `from runtime import core` imports runtime.core
                yield node.lineno, f"{name}.{alias.name}"


def wrong_imports() -> list[str]:
    """Each import that points the wrong way between layers."""
    wrong = []
    for module, path in modules():
        own = layer_of(module)
        for line, name in imported(module, path, ast.parse(path.read_text())):
            other = layer_of(name)
            if other is None:
                continue
            if own not in ALLOWED or other not in ALLOWED[own]:
                wrong.append(f"{path.relative_to(REPO)}:{line} ({own}) imports {name} ({other})")
    return wrong


def sql_outside_stores() -> list[str]:
    """Each `sqlite3` import or SQL string outside the store modules."""
    found = []
    for module, path in modules():
        if STORE_MODULES.match(module):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "sqlite3" in names:
                    found.append(f"{where} imports sqlite3")
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL.match(node.value)
            ):
                found.append(f"{where} holds SQL: {node.value.strip()[:40]!r}")
    return found


def test_every_module_belongs_to_a_layer() -> None:
    """A new subpackage of runtime/ must be placed in a layer before it can be imported."""
    unplaced = [module for module, _ in modules() if layer_of(module) == "unplaced"]
    assert unplaced == []


def test_imports_point_one_way() -> None:
    """Kernel <- actors <- node application; kernel <- relay; nothing points back."""
    assert wrong_imports() == []


def test_only_the_stores_hold_sql() -> None:
    """No module outside the store implementations opens a database or holds SQL."""
    assert sql_outside_stores() == []


def test_tests_do_not_import_private_bench_modules() -> None:
    """Shared process helpers live in tests.support, which bench may import, not the reverse."""
    private = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for line, name in imported("tests.x", path, ast.parse(path.read_text())):
            private_parts = [p for p in name.split(".")[1:] if p.startswith("_")]
            if name.startswith("bench.") and private_parts not in ([], ["__main__"]):
                private.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert private == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import relay_app.store\n", ["(kernel) imports relay_app.store (relay)"]),
        ("from actors import cache\n", ["(kernel) imports actors (actors)"]),
        ("from runtime.node.node import Node\n", ["(kernel) imports runtime.node.node (node)"]),
    ],
)
def test_the_checker_sees_a_wrong_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: list[str]
) -> None:
    """A kernel module importing upward is reported (the check can fail)."""
    fake = tmp_path / "runtime" / "core"
    fake.mkdir(parents=True)
    (tmp_path / "runtime" / "__init__.py").write_text("")
    (fake / "bad.py").write_text(source)
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGES", ("runtime",))
    found = wrong_imports()
    assert found
    assert found[0].endswith(expected[0])


def test_the_checker_sees_sql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQL in a relay module outside relay_app/stores/ is reported (the check can fail)."""
    (tmp_path / "relay_app" / "inbox").mkdir(parents=True)
    (tmp_path / "relay_app" / "inbox" / "x.py").write_text('Q = "SELECT 1 FROM messages"\n')
    (tmp_path / "relay_app" / "stores").mkdir()
    (tmp_path / "relay_app" / "stores" / "ok.py").write_text('Q = "SELECT 1"\nimport sqlite3\n')
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    monkeypatch.setitem(globals(), "PACKAGES", ("relay_app",))
    assert sql_outside_stores() == ["relay_app/inbox/x.py:1 holds SQL: 'SELECT 1 FROM messages'"]
