"""A plain-HTTP relay loads no package it does not use: its memory is part of its budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO

# Each costs megabytes of resident memory; the relay serves without them.
UNUSED = ("cryptography", "requests", "urllib3")

PROBE = """
import sys, urllib.request
import relay_app.cli
from relay_app.server import RelayServer
from runtime.core.config import ClusterConfig, RelaySettings
config = ClusterConfig(nodes=(), relay=RelaySettings(data_dir=sys.argv[1]), agents=())
server = RelayServer(config, host="127.0.0.1", port=0).start()
for path in ("/healthz", "/messages/login"):
    urllib.request.urlopen(server.url + path, timeout=10).read()
server.stop()
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_a_relay_started_and_stopped_never_imported_what_it_does_not_use(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "relay")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(done.stdout.split())
    assert "bottle" in loaded  # the probe did load the relay
    assert loaded.isdisjoint(UNUSED), sorted(loaded & set(UNUSED))
