"""The installed wheel: the three packages and the inbox's files, never `bench`, no warnings."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_the_inbox_files_and_leaves_bench_out(tmp_path: Path) -> None:
    # A copy without build/: a stale build/lib from an older layout would leak into the wheel.
    source = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "-w", str(tmp_path / "whl"),
         "--no-deps"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "BuildBackendWarning" not in built.stdout + built.stderr, built.stdout + built.stderr
    (wheel,) = (tmp_path / "whl").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"actors", "runtime", "relay_app", "commander_storage-0.1.0.dist-info"}
    assert "relay_app/inbox/templates/badge.tpl" in names
    assert "relay_app/inbox/static/badge.js" in names
