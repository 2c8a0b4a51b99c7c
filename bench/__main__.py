"""`python -m bench <name> [args...]`: run `main(argv)` of the module `bench/<name>.py`.

Any `bench/<name>.py` with a `main(argv: list[str]) -> int` is a benchmark; nothing
here needs to change when one is added. `python -m bench` lists them. `all` runs
every benchmark in turn with the same arguments, unless a `bench/all.py` exists,
which then takes over.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

NAME = re.compile(r"\A[a-z][a-z0-9_]*\Z")
BenchMain = Callable[[list[str]], int]


def available() -> list[str]:
    """The benchmark module names in this package."""
    package_dir = str(Path(__file__).parent)
    return sorted(
        m.name for m in pkgutil.iter_modules([package_dir]) if NAME.match(m.name) and not m.ispkg
    )


def load(name: str) -> BenchMain:
    """Import `bench.<name>` and return its `main`; SystemExit with a hint if there is none."""
    if not NAME.match(name) or name not in available():
        raise SystemExit(f"bench: no benchmark {name!r}; available: {', '.join(available())}")
    module = importlib.import_module(f"bench.{name}")
    run = getattr(module, "main", None)
    if not callable(run):
        raise SystemExit(f"bench: bench/{name}.py has no main(argv)")
    return cast(BenchMain, run)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to one benchmark (or all of them); return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m bench <name> [--quick] [args...]")
        print("benchmarks: " + ", ".join(available()))
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "all" and "all" not in available():
        worst = 0
        for each in available():
            print(f"== bench {each}", flush=True)
            worst = max(worst, load(each)(list(rest)))
        return worst
    return load(name)(rest)


if __name__ == "__main__":
    sys.exit(main())
